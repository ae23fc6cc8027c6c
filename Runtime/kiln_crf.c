/* kiln_crf.c: a linear-chain CRF over tag paths, the CRF layer's primitives
 * (KilnIR/Ops/CRF.swift states the definition; its float64 rules are the reference):
 *
 *   kiln_crf_nll       the negative log-likelihood of each row's tag path (the forward algorithm)
 *   kiln_crf_nll_grad  its gradient (forward-backward): marginals minus the one-hot of the path
 *   kiln_crf_viterbi   the best path (ties towards the lower tag; 0 at masked steps)
 *
 * Operands, row-major: emissions (rows, steps, n) f32; transitions (n, n), [i * n + j] the score of
 * tag i followed by tag j; start (n); end (n); tags (rows, steps) i32; mask (rows, steps) bytes 0/1,
 * or NULL when every step counts. A masked step is skipped: the chain links consecutive unmasked
 * steps, and a row with none has NLL 0 and gradient 0. Everything is in log space, each sum of
 * exponentials with its maximum factored out. An unmasked tag outside [0, n) makes its row's NLL
 * and gradient NaN, which the training loop reports.
 *
 * Rows are independent: a large batch runs in blocks of rows on the instance's thread pool, and
 * each row's result is the same whatever the blocks, so results do not depend on the thread
 * count. The per-row scratch vectors (a few of KILN_CRF_MAX_TAGS floats, 16 KB at most) live on
 * the stack; Viterbi's backpointers are an output the planner places.
 */
#include "kiln_runtime.h"

#include <math.h>
#include <string.h>

/* log(sum over k < n of exp(x[k])), with the maximum factored out. */
static float log_sum_exp(const float *x, int64_t n) {
    float m = x[0];
    for (int64_t k = 1; k < n; k++)
        if (x[k] > m) m = x[k];
    if (isinf(m)) return m;
    float s = 0;
    for (int64_t k = 0; k < n; k++) s += expf(x[k] - m);
    return m + logf(s);
}

static int counts(const uint8_t *mask, int64_t t) { return !mask || mask[t]; }

/* The next unmasked step before t (-1 when none). */
static int64_t previous_step(const uint8_t *mask, int64_t t) {
    for (t--; t >= 0 && !counts(mask, t); t--) {}
    return t;
}

/* next[j] = log sum_i exp(alpha[i] + trans[i, j]) + e[j]: one step of the forward recursion. */
static void forward_step(const float *alpha, const float *trans, const float *e, int64_t n, float *next, float *tmp) {
    for (int64_t j = 0; j < n; j++) {
        for (int64_t i = 0; i < n; i++) tmp[i] = alpha[i] + trans[i * n + j];
        next[j] = log_sum_exp(tmp, n) + e[j];
    }
}

/* Whether every unmasked tag of the row is in [0, n). */
static int tags_valid(const int32_t *tags, const uint8_t *mask, int64_t steps, int64_t n) {
    for (int64_t t = 0; t < steps; t++)
        if (counts(mask, t) && (tags[t] < 0 || tags[t] >= n)) return 0;
    return 1;
}

/* Runs rows [0, rows) of a job in blocks on the pool: item b is rows [b * per, (b + 1) * per). */
typedef struct {
    const float *em, *trans, *start, *end, *dnll;
    const int32_t *tags;
    const uint8_t *mask;
    float *out, *dtrans, *dstart, *dend;
    int32_t *path, *pointers;
    int64_t rows, steps, n, per;
} crf_job;

typedef void (*crf_row_fn)(const crf_job *j, int64_t r);

typedef struct { const crf_job *job; crf_row_fn row; } crf_task;

static void crf_block(void *ctx, int64_t b) {
    const crf_task *task = ctx;
    int64_t lo = b * task->job->per, hi = lo + task->job->per;
    if (hi > task->job->rows) hi = task->job->rows;
    for (int64_t r = lo; r < hi; r++) task->row(task->job, r);
}

/* Blocks of about 64K multiply-adds of the recursions (steps * n * n per row), fixed by the sizes. */
static void run_rows(crf_job *j, crf_row_fn row) {
    int64_t work = j->steps * j->n * j->n;
    if (work < 1) work = 1;
    j->per = ((int64_t)1 << 16) / work;
    if (j->per < 1) j->per = 1;
    int64_t blocks = (j->rows + j->per - 1) / j->per;
    crf_task task = { j, row };
    if (blocks <= 1) {
        for (int64_t r = 0; r < j->rows; r++) row(j, r);
        return;
    }
    kiln_parallel_for(blocks, crf_block, &task);
}

/* ---- negative log-likelihood ---- */

static void nll_row(const crf_job *j, int64_t r) {
    const int64_t n = j->n, steps = j->steps;
    const float *em = j->em + r * steps * n;
    const int32_t *tags = j->tags + r * steps;
    const uint8_t *mask = j->mask ? j->mask + r * steps : NULL;
    float a[KILN_CRF_MAX_TAGS], b[KILN_CRF_MAX_TAGS], tmp[KILN_CRF_MAX_TAGS];
    float *alpha = a, *next = b;
    if (!tags_valid(tags, mask, steps, n)) { j->out[r] = NAN; return; }
    int64_t last = -1;
    float score = 0;
    for (int64_t t = 0; t < steps; t++) {
        if (!counts(mask, t)) continue;
        const float *e = em + t * n;
        int32_t y = tags[t];
        if (last < 0) {
            for (int64_t k = 0; k < n; k++) alpha[k] = j->start[k] + e[k];
            score = j->start[y] + e[y];
        } else {
            forward_step(alpha, j->trans, e, n, next, tmp);
            float *swap = alpha; alpha = next; next = swap;
            score += j->trans[tags[last] * n + y] + e[y];
        }
        last = t;
    }
    if (last < 0) { j->out[r] = 0; return; }
    for (int64_t k = 0; k < n; k++) tmp[k] = alpha[k] + j->end[k];
    j->out[r] = log_sum_exp(tmp, n) - (score + j->end[tags[last]]);
}

void kiln_crf_nll(const float *em, const float *trans, const float *start, const float *end, const int32_t *tags,
                  const uint8_t *mask, float *nll, int64_t rows, int64_t steps, int64_t n) {
    crf_job j = { .em = em, .trans = trans, .start = start, .end = end, .tags = tags, .mask = mask, .out = nll,
                  .rows = rows, .steps = steps, .n = n };
    run_rows(&j, nll_row);
}

/* ---- gradient ----
 * With alpha_k the forward vectors, beta_k the backward ones (beta at the last step = end) and
 * logZ, the marginals are p_k[j] = exp(alpha_k[j] + beta_k[j] - logZ) and, between consecutive
 * unmasked steps, p(i, j) = exp(alpha_{k-1}[i] + trans[i, j] + e_k[j] + beta_k[j] - logZ).
 * The forward pass keeps alpha_k in d emissions' row at step v_k; the backward pass walks the
 * steps from the last, reads alpha_{k-1} there (not yet overwritten) and replaces alpha_k by
 * dnll * (p_k - onehot(y_k)). */
static void grad_row(const crf_job *j, int64_t r) {
    const int64_t n = j->n, steps = j->steps;
    const float *em = j->em + r * steps * n;
    const int32_t *tags = j->tags + r * steps;
    const uint8_t *mask = j->mask ? j->mask + r * steps : NULL;
    float *de = j->out + r * steps * n, *dtrans = j->dtrans + r * n * n;
    float *dstart = j->dstart + r * n, *dend = j->dend + r * n;
    const float g = j->dnll[r];
    float beta[KILN_CRF_MAX_TAGS], prev[KILN_CRF_MAX_TAGS], w[KILN_CRF_MAX_TAGS], tmp[KILN_CRF_MAX_TAGS];
    memset(de, 0, sizeof(float) * (size_t)(steps * n));
    memset(dtrans, 0, sizeof(float) * (size_t)(n * n));
    memset(dstart, 0, sizeof(float) * (size_t)n);
    memset(dend, 0, sizeof(float) * (size_t)n);
    if (!tags_valid(tags, mask, steps, n)) {
        for (int64_t k = 0; k < steps * n; k++) de[k] = NAN;
        for (int64_t k = 0; k < n * n; k++) dtrans[k] = NAN;
        for (int64_t k = 0; k < n; k++) dstart[k] = dend[k] = NAN;
        return;
    }
    int64_t last = -1;
    for (int64_t t = 0; t < steps; t++) {
        if (!counts(mask, t)) continue;
        if (last < 0) {
            for (int64_t k = 0; k < n; k++) de[t * n + k] = j->start[k] + em[t * n + k];
        } else {
            forward_step(de + last * n, j->trans, em + t * n, n, de + t * n, tmp);
        }
        last = t;
    }
    if (last < 0) return;
    for (int64_t k = 0; k < n; k++) tmp[k] = de[last * n + k] + j->end[k];
    const float logZ = log_sum_exp(tmp, n);
    for (int64_t k = 0; k < n; k++) beta[k] = j->end[k];
    for (int64_t t = last; t >= 0; t = previous_step(mask, t)) {
        const int64_t before = previous_step(mask, t);
        const int32_t y = tags[t];
        const float *e = em + t * n;
        if (before >= 0) {
            /* The pairs (before, t), and beta at `before`: prev[i] = log sum_j exp(trans[i, j] + w[j]). */
            const float *alpha = de + before * n;
            for (int64_t k = 0; k < n; k++) w[k] = e[k] + beta[k];
            for (int64_t i = 0; i < n; i++) {
                const float *row = j->trans + i * n;
                for (int64_t k = 0; k < n; k++) {
                    tmp[k] = row[k] + w[k];
                    dtrans[i * n + k] += g * expf(alpha[i] + tmp[k] - logZ);
                }
                prev[i] = log_sum_exp(tmp, n);
            }
            dtrans[tags[before] * n + y] -= g;
        }
        float *d = de + t * n;
        for (int64_t k = 0; k < n; k++) d[k] = g * (expf(d[k] + beta[k] - logZ) - (k == y ? 1.0f : 0.0f));
        if (t == last)
            for (int64_t k = 0; k < n; k++) dend[k] = d[k];
        if (before < 0)
            for (int64_t k = 0; k < n; k++) dstart[k] = d[k];
        else
            memcpy(beta, prev, sizeof(float) * (size_t)n);
    }
}

void kiln_crf_nll_grad(const float *em, const float *trans, const float *start, const float *end, const int32_t *tags,
                       const float *dnll, const uint8_t *mask, float *dem, float *dtrans, float *dstart, float *dend,
                       int64_t rows, int64_t steps, int64_t n) {
    crf_job j = { .em = em, .trans = trans, .start = start, .end = end, .tags = tags, .dnll = dnll, .mask = mask,
                  .out = dem, .dtrans = dtrans, .dstart = dstart, .dend = dend, .rows = rows, .steps = steps, .n = n };
    run_rows(&j, grad_row);
}

/* ---- Viterbi ---- */

static void viterbi_row(const crf_job *j, int64_t r) {
    const int64_t n = j->n, steps = j->steps;
    const float *em = j->em + r * steps * n;
    const uint8_t *mask = j->mask ? j->mask + r * steps : NULL;
    int32_t *path = j->path + r * steps, *bp = j->pointers + r * steps * n;
    float a[KILN_CRF_MAX_TAGS], b[KILN_CRF_MAX_TAGS];
    float *delta = a, *next = b;
    memset(path, 0, sizeof(int32_t) * (size_t)steps);
    memset(bp, 0, sizeof(int32_t) * (size_t)(steps * n));
    int64_t last = -1;
    for (int64_t t = 0; t < steps; t++) {
        if (!counts(mask, t)) continue;
        const float *e = em + t * n;
        if (last < 0) {
            for (int64_t k = 0; k < n; k++) delta[k] = j->start[k] + e[k];
        } else {
            for (int64_t k = 0; k < n; k++) {
                float best = delta[0] + j->trans[k];
                int32_t arg = 0;
                for (int64_t i = 1; i < n; i++) {
                    float s = delta[i] + j->trans[i * n + k];
                    if (s > best) { best = s; arg = (int32_t)i; }
                }
                next[k] = best + e[k];
                bp[t * n + k] = arg;
            }
            float *swap = delta; delta = next; next = swap;
        }
        last = t;
    }
    if (last < 0) return;
    float best = delta[0] + j->end[0];
    int32_t tag = 0;
    for (int64_t k = 1; k < n; k++)
        if (delta[k] + j->end[k] > best) { best = delta[k] + j->end[k]; tag = (int32_t)k; }
    for (int64_t t = last; t >= 0; t = previous_step(mask, t)) {
        path[t] = tag;
        tag = bp[t * n + tag];
    }
}

void kiln_crf_viterbi(const float *em, const float *trans, const float *start, const float *end, const uint8_t *mask,
                      int32_t *path, int32_t *pointers, int64_t rows, int64_t steps, int64_t n) {
    crf_job j = { .em = em, .trans = trans, .start = start, .end = end, .mask = mask, .path = path, .pointers = pointers,
                  .rows = rows, .steps = steps, .n = n };
    run_rows(&j, viterbi_row);
}
