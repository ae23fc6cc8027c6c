/* kiln_scan.c: the loop of a recurrent scan. The compiler emits, per scan,
 * one step kernel (all the gate math of a cell over rows x units) and a call
 * to kiln_scan with the scan's buffers; this file walks the time steps and
 * makes the one matrix product of each step (kiln_gemm: the runtime's
 * kernels). Code size and
 * compile time therefore do not depend on the number of steps.
 *
 * The batch's rows are independent, so a scan runs as blocks of rows, one per
 * thread, each walking every step (kiln_scan).
 *
 * Forward, per processing step s = 0 .. T-1:
 *     scratch = h · U            (kiln_sgemm; skipped at s = 0, where h = 0: scratch = 0;
 *                                 skipped when every row is masked at the step)
 *     kernel(t, t_prev, t_out)   (gates, new h and c, sequence output, records)
 * Backward (backprop through time), s = T-1 .. 0:
 *     kernel(t, t_prev, t_out)   (d of the gate pre-activations, dh and dc carried)
 *     dh += dInner_t · Uᵀ        (skipped at s = 0 and at fully masked steps)
 * with t = the input step read (T-1-s when going backwards), t_prev the input
 * step of processing step s-1 (-1 at s = 0) and t_out the output position
 * (T-1-s when the output is flipped back into time order).
 */
#include <stdint.h>
#include <string.h>

#include "kiln_runtime.h"

/* Every field is 8 bytes; the compiler fills the struct in this order. */
typedef struct {
    /* The step kernel over rows [lo, hi) of the batch. */
    void (*kernel)(void *const *bufs, int64_t n, int64_t seed, int64_t iteration, int64_t t, int64_t t_prev,
                   int64_t t_out, int64_t steps, int64_t lo, int64_t hi);
    void *const *bufs;
    int64_t n, seed, iteration, steps, go_backwards, flip_output, backward;
    const uint8_t *mask;           /* (n, steps), or NULL */
    const float *a, *b;            /* the product's operands: h and U; dInner (n, steps, gates) and U */
    float *c;                      /* its result: scratch (n, gates); dh (n, units) */
    int64_t units, gates;
    float *h, *cell;               /* carried state: h and c; dh and dc */
    const float *h0, *cell0;       /* their initial values, NULL for zeros */
} kiln_scan_args;

/* A scan of less work than this (rows x units x gates x steps multiply-adds of its
 * products) runs on one thread. */
#ifndef KILN_SCAN_MIN_WORK
#define KILN_SCAN_MIN_WORK ((int64_t)1 << 20)
#endif

static int any_row(const uint8_t *mask, int64_t lo, int64_t hi, int64_t steps, int64_t t) {
    for (int64_t r = lo; r < hi; r++)
        if (mask[r * steps + t]) return 1;
    return 0;
}

/* The whole scan for rows [lo, hi) of the batch. A row's recurrence reads only that
 * row (its input, state and mask), and the products compute each row of C the same
 * way whatever the rows around it, so a block of rows gives exactly what it gives
 * inside the whole batch. */
static void scan_rows(const kiln_scan_args *a, int64_t lo, int64_t hi) {
    const int64_t T = a->steps, u = a->units, g = a->gates, rows = hi - lo;
    size_t state = (size_t)(rows * u) * sizeof(float);
    float *h = a->h + lo * u, *cell = a->cell + lo * u;
    if (a->h0) memcpy(h, a->h0 + lo * u, state); else memset(h, 0, state);
    if (a->cell0) memcpy(cell, a->cell0 + lo * u, state); else memset(cell, 0, state);
    /* Backward: Uᵀ once for all steps when it is small (on the stack), so each step's
     * dInner_t·Uᵀ is a plain row-blocked product. */
    const int small = a->backward && u * g <= 16384;
    float ut[small ? u * g : 1];
    if (small)
        for (int64_t i = 0; i < u; i++)
            for (int64_t j = 0; j < g; j++) ut[j * u + i] = a->b[i * g + j];
    /* The product's rows of this block: forward, h and scratch (n, gates); backward,
     * dInner (n, steps, gates) and dh (n, units). */
    float *c = a->c + lo * (a->backward ? u : g);
    const float *in = a->backward ? a->a + lo * T * g : h;
    for (int64_t k = 0; k < T; k++) {
        int64_t s = a->backward ? T - 1 - k : k;
        int64_t t = a->go_backwards ? T - 1 - s : s;
        int64_t t_prev = s == 0 ? -1 : (a->go_backwards ? t + 1 : t - 1);
        int64_t t_out = a->flip_output ? T - 1 - s : s;
        int active = !a->mask || any_row(a->mask, lo, hi, T, t);
        if (!a->backward) {
            if (s == 0)
                memset(c, 0, (size_t)(rows * g) * sizeof(float));
            else if (active)
                kiln_gemm(0, 0, rows, g, u, in, u, a->b, g, 0.0f, c, g);
        }
        a->kernel(a->bufs, a->n, a->seed, a->iteration, t, t_prev, t_out, T, lo, hi);
        if (a->backward && s > 0 && active)
            kiln_gemm(0, small ? 0 : 1, rows, u, g, in + t * g, T * g, small ? ut : a->b, small ? u : g, 1.0f, c, u);
    }
}

typedef struct {
    const kiln_scan_args *a;
    int64_t blocks;
} scan_job;

static void scan_block(void *ctx, int64_t i) {
    const scan_job *j = ctx;
    int64_t n = j->a->n;
    scan_rows(j->a, n * i / j->blocks, n * (i + 1) / j->blocks);
}

/* The rows are cut into one block per thread of the call, each running every step on
 * its own: no hand-off between threads inside the time loop. (Row blocks change no
 * result, so the block count may follow the thread count.) */
KILN_HIDDEN void kiln_scan(const kiln_scan_args *a) {
    const int64_t n = a->n;
    if (n <= 0 || a->steps <= 0) return;
    int64_t blocks = kiln_thread_count();
    if (blocks > n) blocks = n;
    if (n * a->units * a->gates * a->steps < KILN_SCAN_MIN_WORK) blocks = 1;
    scan_job j = { a, blocks };
    if (blocks < 2) scan_rows(a, 0, n);
    else kiln_parallel_for(blocks, scan_block, &j);
}

static void scan_task(void *ctx, int64_t i) { kiln_scan(((const kiln_scan_args *const *)ctx)[i]); }

/* Two independent scans (a Bidirectional layer's directions) at once, each on one thread;
 * each is computed exactly as alone, so the result does not depend on the thread count. */
KILN_HIDDEN void kiln_scan_pair(const kiln_scan_args *a, const kiln_scan_args *b) {
    if (a->n <= 0 || a->steps <= 0) return;
    const kiln_scan_args *both[2] = { a, b };
    kiln_parallel_for(2, scan_task, both);
}
