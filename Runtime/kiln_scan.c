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
#include <stdlib.h>
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
    /* A masked scan for inference (row_map >= 0) runs its rows in an order this driver
     * picks (scan_ordered): bufs holds nbufs pointers, of which slot row_map is the kernel's
     * row map (filled here), seq_slot and last_slot its sequence and last outputs;
     * zero_output: masked steps output zeros rather than the previous output. */
    int64_t nbufs, row_map, seq_slot, last_slot, zero_output;
    /* Recurrent dropout (training), or NULL: an (n, gates) mask; the product of gate block k
     * reads h ⊙ its block k (forward), and block k of dInner·Uᵀ is multiplied by it (backward). */
    const float *rdrop;
} kiln_scan_args;

/* A scan of less work than this (rows x units x gates x steps multiply-adds of its
 * products) runs on one thread. */
#ifndef KILN_SCAN_MIN_WORK
#define KILN_SCAN_MIN_WORK ((int64_t)1 << 20)
#endif

/* The rows are cut into one block per thread of the call, each running every step on its own:
 * no hand-off between threads inside the time loop. (Row blocks change no result, so the
 * block count may follow the thread count.) */
static int64_t row_blocks(const kiln_scan_args *a, int64_t rows) {
    int64_t blocks = kiln_thread_count();
    if (blocks > rows) blocks = rows;
    return rows * a->units * a->gates * a->steps < KILN_SCAN_MIN_WORK ? 1 : blocks;
}

/* The products of one step with recurrent dropout, gate block by gate block (tmp: rows x u).
 * Forward: c[:, k] = (h ⊙ m[:, k]) · U[:, k]; backward: dh += (dInner_t[:, k] · U[:, k]ᵀ) ⊙ m[:, k]. */
static void dropped_product(const kiln_scan_args *a, int64_t lo, int64_t rows, const float *in, int64_t lda, float *c, float *tmp) {
    const int64_t u = a->units, g = a->gates;
    for (int64_t k = 0; k < g / u; k++) {
        const float *m = a->rdrop + lo * g + k * u;
        if (!a->backward) {
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < u; j++) tmp[r * u + j] = in[r * lda + j] * m[r * g + j];
            kiln_gemm(0, 0, rows, u, u, tmp, u, a->b + k * u, g, 0.0f, c + k * u, g);
        } else {
            kiln_gemm(0, 1, rows, u, u, in + k * u, lda, a->b + k * u, g, 0.0f, tmp, u);
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = 0; j < u; j++) c[r * u + j] += tmp[r * u + j] * m[r * g + j];
        }
    }
}

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
    const int small = a->backward && u * g <= 16384 && !a->rdrop;
    float ut[small ? u * g : 1];
    if (small)
        for (int64_t i = 0; i < u; i++)
            for (int64_t j = 0; j < g; j++) ut[j * u + i] = a->b[i * g + j];
    /* The product's rows of this block: forward, h and scratch (n, gates); backward,
     * dInner (n, steps, gates) and dh (n, units). */
    float *c = a->c + lo * (a->backward ? u : g);
    const float *in = a->backward ? a->a + lo * T * g : h;
    float *tmp = a->rdrop ? malloc((size_t)(rows * u) * sizeof(float)) : NULL;
    for (int64_t k = 0; k < T; k++) {
        int64_t s = a->backward ? T - 1 - k : k;
        int64_t t = a->go_backwards ? T - 1 - s : s;
        int64_t t_prev = s == 0 ? -1 : (a->go_backwards ? t + 1 : t - 1);
        int64_t t_out = a->flip_output ? T - 1 - s : s;
        int active = !a->mask || any_row(a->mask, lo, hi, T, t);
        if (!a->backward) {
            /* h = 0 at the first step unless the scan starts from given states. */
            if (s == 0 && !a->h0)
                memset(c, 0, (size_t)(rows * g) * sizeof(float));
            else if (active && tmp)
                dropped_product(a, lo, rows, in, u, c, tmp);
            else if (active)
                kiln_gemm(0, 0, rows, g, u, in, u, a->b, g, 0.0f, c, g);
        }
        a->kernel(a->bufs, a->n, a->seed, a->iteration, t, t_prev, t_out, T, lo, hi);
        if (a->backward && s > 0 && active && tmp)
            dropped_product(a, lo, rows, in + t * g, T * g, c, tmp);
        else if (a->backward && s > 0 && active)
            kiln_gemm(0, small ? 0 : 1, rows, u, g, in + t * g, T * g, small ? ut : a->b, small ? u : g, 1.0f, c, u);
    }
    free(tmp);
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

static void scan_ordered(const kiln_scan_args *a);

KILN_HIDDEN void kiln_scan(const kiln_scan_args *a) {
    const int64_t n = a->n;
    if (n <= 0 || a->steps <= 0) return;
    if (a->row_map >= 0) {
        scan_ordered(a);
        return;
    }
    int64_t blocks = row_blocks(a, n);
    scan_job j = { a, blocks };
    if (blocks < 2) scan_rows(a, 0, n);
    else kiln_parallel_for(blocks, scan_block, &j);
}

/* ------------------------------------------------------------------ row order
 *
 * Right-padded batches (the usual case) have rows whose remaining steps are all
 * masked long before the last step, and a backward-reading scan over them starts
 * with steps that are masked for some rows. Such a row's state does not change over
 * those steps and its output there is known (zeros, or the previous output, which is
 * its frozen h), so it need not take part in the step's product and kernel. Rows
 * are put in order of their span of real steps (processing order): by where it
 * ends, longest first, when every row starts at step 0; by where it starts when
 * every row runs to the last step. At each step the rows still (or already) running
 * are then a prefix of each block, which is all the product and the kernel are given;
 * this driver writes the outputs of the others. The state is kept in that order and put
 * back in batch order at the end; each row is computed exactly as in batch order, so
 * the results are the same bit for bit. Other masks keep batch order. */

/* Rows are ordered in chunks of this many (the order lives on the stack). */
#define KILN_SCAN_CHUNK 4096

typedef struct {
    const kiln_scan_args *a;
    const int32_t *map;            /* internal row i (from the chunk start) -> batch row */
    const int32_t *span;           /* per internal row: its key step (see scan_ordered) */
    int64_t c0, mode;              /* chunk start; mode 0 keeps every row, 1 trailing, 2 leading */
    const int64_t *block_start;    /* blocks + 1 internal offsets */
} ordered_job;

/* The output of a row left out of a step: its h repeated, or zeros. */
static void skipped_output(float *out, const float *h, int64_t u, int repeat) {
    if (repeat) memcpy(out, h, (size_t)u * sizeof(float));
    else memset(out, 0, (size_t)u * sizeof(float));
}

static void ordered_block(void *ctx, int64_t b) {
    const ordered_job *j = ctx;
    const kiln_scan_args *a = j->a;
    const int64_t T = a->steps, u = a->units, g = a->gates;
    const int64_t lo = j->c0 + j->block_start[b], hi = j->c0 + j->block_start[b + 1];
    if (hi <= lo) return;
    memset(a->h + lo * u, 0, (size_t)((hi - lo) * u) * sizeof(float));
    memset(a->cell + lo * u, 0, (size_t)((hi - lo) * u) * sizeof(float));
    void *bufs[a->nbufs];
    memcpy(bufs, a->bufs, sizeof bufs);
    bufs[a->row_map] = (void *)(j->map - j->c0);   /* the kernel reads map[i0] with i0 absolute */
    float *seq = bufs[a->seq_slot], *last = bufs[a->last_slot];
    const int repeat = j->mode == 1 && !a->zero_output;   /* finished rows repeat their h */
    const int32_t *map = j->map - j->c0, *span = j->span - j->c0;
    int64_t k = hi;                /* rows [lo, k) take part in the step */
    for (int64_t s = 0; s < T; s++) {
        int64_t t = a->go_backwards ? T - 1 - s : s;
        int64_t t_prev = s == 0 ? -1 : (a->go_backwards ? t + 1 : t - 1);
        int64_t t_out = a->flip_output ? T - 1 - s : s;
        if (j->mode == 1) { k = lo; while (k < hi && span[k] > s) k++; }      /* still running: ends after s */
        else if (j->mode == 2) { k = lo; while (k < hi && span[k] <= s) k++; } /* already started at s */
        if (k > lo) {
            if (s == 0) memset(a->c + lo * g, 0, (size_t)((k - lo) * g) * sizeof(float));
            else kiln_gemm(0, 0, k - lo, g, u, a->h + lo * u, u, a->b, g, 0.0f, a->c + lo * g, g);
            a->kernel(bufs, a->n, a->seed, a->iteration, t, t_prev, t_out, T, lo, k);
        }
        /* The others: a finished row repeats its frozen h (or zeros); one not started outputs zeros. */
        for (int64_t i = k; i < hi; i++) skipped_output(seq + ((int64_t)map[i] * T + t_out) * u, a->h + i * u, u, repeat);
    }
    /* The last output of a row that ended early is that of the last step, which it skipped. */
    for (int64_t i = k; i < hi; i++) skipped_output(last + (int64_t)map[i] * u, a->h + i * u, u, repeat);
}

/* Puts rows [c0, c0 + rows) of x (rows of u floats, internal order) back in batch order. */
static void unpermute(float *x, const int32_t *map, int64_t c0, int64_t rows, int64_t u) {
    uint8_t done[rows];
    float keep[u], next[u];
    memset(done, 0, (size_t)rows);
    for (int64_t start = 0; start < rows; start++) {
        if (done[start] || map[start] - c0 == start) { done[start] = 1; continue; }
        /* Follow the cycle: the row at internal i belongs at batch position map[i]. */
        int64_t i = start;
        memcpy(keep, x + (c0 + i) * u, (size_t)u * sizeof(float));
        while (!done[i]) {
            done[i] = 1;
            int64_t to = map[i] - c0;
            memcpy(next, x + (c0 + to) * u, (size_t)u * sizeof(float));
            memcpy(x + (c0 + to) * u, keep, (size_t)u * sizeof(float));
            memcpy(keep, next, (size_t)u * sizeof(float));
            i = to;
        }
    }
}

static void scan_ordered(const kiln_scan_args *a) {
    const int64_t n = a->n, T = a->steps, u = a->units;
    for (int64_t c0 = 0; c0 < n; c0 += KILN_SCAN_CHUNK) {
        const int64_t rows = n - c0 < KILN_SCAN_CHUNK ? n - c0 : KILN_SCAN_CHUNK;
        int32_t first[rows], end[rows], sorted[rows], map[rows], span[rows];
        /* Each row's span of real steps in processing order: [first, end); none: [T, 0). */
        int trailing = 1, leading = 1;
        for (int64_t r = 0; r < rows; r++) {
            first[r] = (int32_t)T; end[r] = 0;
            for (int64_t s = 0; s < T; s++) {
                int64_t t = a->go_backwards ? T - 1 - s : s;
                if (a->mask[(c0 + r) * T + t]) { if (first[r] == T) first[r] = (int32_t)s; end[r] = (int32_t)(s + 1); }
            }
            if (end[r] > 0 && first[r] != 0) trailing = 0;
            if (end[r] > 0 && end[r] != T) leading = 0;
        }
        /* (Past 2^16 steps the sort's counts would not fit the stack: batch order then.) */
        int64_t mode = a->h0 || a->cell0 || T > 65536 ? 0 : trailing ? 1 : leading ? 2 : 0;
        /* Sort by the key (end descending, or first ascending), stably: a counting sort over steps. */
        int32_t bucket[rows];
        for (int64_t r = 0; r < rows; r++) bucket[r] = mode == 1 ? (int32_t)T - end[r] : mode == 2 ? first[r] : 0;
        const int64_t buckets = mode ? T + 1 : 1;
        int64_t count[buckets];
        memset(count, 0, sizeof count);
        for (int64_t r = 0; r < rows; r++) count[bucket[r]]++;
        for (int64_t v = 1; v < buckets; v++) count[v] += count[v - 1];
        for (int64_t r = rows - 1; r >= 0; r--) sorted[--count[bucket[r]]] = (int32_t)r;
        /* Deal the sorted rows round-robin to the blocks, so each block has long and short rows. */
        int64_t blocks = row_blocks(a, rows);
        int64_t block_start[blocks + 1];
        block_start[0] = 0;
        for (int64_t b = 0; b < blocks; b++) block_start[b + 1] = block_start[b] + (rows - b + blocks - 1) / blocks;
        for (int64_t b = 0; b < blocks; b++)
            for (int64_t i = 0; block_start[b] + i < block_start[b + 1]; i++) {
                int32_t r = sorted[b + i * blocks];
                map[block_start[b] + i] = (int32_t)(c0 + r);
                span[block_start[b] + i] = mode == 1 ? end[r] : first[r];
            }
        ordered_job j = { a, map, span, c0, mode, block_start };
        if (blocks < 2) ordered_block(&j, 0);
        else kiln_parallel_for(blocks, ordered_block, &j);
        unpermute(a->h, map, c0, rows, u);
        unpermute(a->cell, map, c0, rows, u);
    }
}

static void scan_task(void *ctx, int64_t i) { kiln_scan(((const kiln_scan_args *const *)ctx)[i]); }

/* Two independent scans (a Bidirectional layer's directions) at once, each on one thread;
 * each is computed exactly as alone, so the result does not depend on the thread count. */
KILN_HIDDEN void kiln_scan_pair(const kiln_scan_args *a, const kiln_scan_args *b) {
    if (a->n <= 0 || a->steps <= 0) return;
    const kiln_scan_args *both[2] = { a, b };
    kiln_parallel_for(2, scan_task, both);
}
