/* kiln_runtime.h: the thin C runtime linked into every libNAME.so.
 *
 * Every function here has hidden visibility: several compiled models can be
 * linked into one program, each carrying its own copy of the runtime. The
 * functions leave the library only through the kiln_api table that
 * kiln_entry() / NAME_describe() return, and through the NAME_* wrappers
 * declared in NAME.h.
 *
 * Conventions: int results are 0 on success and -1 on error; the error is
 * then one sentence in kiln_last_error(inst) (a per-instance buffer, "" when
 * the last call succeeded). With inst == NULL the error goes to a
 * thread-local buffer that kiln_last_error(NULL) returns (e.g. after
 * kiln_create fails). Instances share nothing but the library's thread pool
 * (see kiln_set_num_threads); one instance is used by one thread at a time:
 * a call that finds another thread inside a call on the same instance changes
 * nothing and returns -1 (kiln_set_seed: does nothing), and
 * kiln_last_error(inst) on the refused thread says the instance is busy.
 * (kiln_destroy, kiln_iterations and kiln_last_error take no such turn.)
 *
 * Allocation happens only in kiln_create, kiln_set_num_threads (pool
 * threads), kiln_reserve, kiln_load_weights
 * (a read buffer) and, once, in kiln_train_step / kiln_evaluate when a batch
 * (or a sequence) is larger than the training arena reserved so far.
 * kiln_predict runs the rows in chunks of the reserved capacity; it allocates
 * only when a sequence of more time steps than before needs a larger arena.
 */
#ifndef KILN_RUNTIME_H
#define KILN_RUNTIME_H
#include "kiln_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define KILN_HIDDEN __attribute__((visibility("hidden")))
#define KILN_EXPORT __attribute__((visibility("default")))
#else
#define KILN_HIDDEN
#define KILN_EXPORT
#endif

/* Rows the arenas hold after kiln_create, unless one row of the arena would
 * need more than KILN_DEFAULT_ARENA_BUDGET / KILN_DEFAULT_CAPACITY bytes; the
 * default capacity is then lowered (to 1 row at least). kiln_reserve raises
 * it. */
#ifndef KILN_DEFAULT_CAPACITY   /* (-D overrides these, e.g. smaller for a ThreadSanitizer build) */
#define KILN_DEFAULT_CAPACITY 256
#endif
#define KILN_MAX_METRICS 16
#ifndef KILN_DEFAULT_ARENA_BUDGET
#define KILN_DEFAULT_ARENA_BUDGET ((int64_t)64 << 20)
#endif

/* Allocates an instance: state copied from d->init_state, iteration 0,
 * seed 0, arenas for the default capacity. NULL on error. */
KILN_HIDDEN kiln_instance *kiln_create(const kiln_model_desc *d);
KILN_HIDDEN void kiln_destroy(kiln_instance *inst);

/* Forward pass (inference) over n rows; inputs[i] / outputs[j] point to n
 * rows each. Runs in chunks of the reserved capacity; never allocates. */
KILN_HIDDEN int kiln_predict(kiln_instance *inst, const void *const *inputs,
                             void *const *outputs, int64_t n);
/* The same for a model with a free number of time steps (d->free_steps): `steps`
 * is T, the length of axis 1 of the inputs. With steps = 0 the model must have
 * a fixed number of steps. */
KILN_HIDDEN int kiln_predict_steps(kiln_instance *inst, const void *const *inputs,
                                   void *const *outputs, int64_t n, int64_t steps);
KILN_HIDDEN int kiln_train_step_steps(kiln_instance *inst, const void *const *x,
                                      const void *const *y, int64_t n, int64_t steps, float *loss);
KILN_HIDDEN int kiln_evaluate_steps(kiln_instance *inst, const void *const *x,
                                    const void *const *y, int64_t n, int64_t steps, float *loss);
/* Grows the predict and training arenas to hold `rows` rows (of one step). */
KILN_HIDDEN int kiln_reserve(kiln_instance *inst, int64_t rows);

/* One optimizer step on one batch of n rows (x: the inputs, y: one target per
 * output). *loss receives the batch loss computed before the update; a NaN or
 * infinite loss is returned as is. A batch larger than the reserved capacity
 * grows the training arena once (an allocation). */
KILN_HIDDEN int kiln_train_step(kiln_instance *inst, const void *const *x,
                                const void *const *y, int64_t n, float *loss);
/* The loss on one batch, without an update; does not count as a step. */
KILN_HIDDEN int kiln_evaluate(kiln_instance *inst, const void *const *x,
                              const void *const *y, int64_t n, float *loss);

/* Weights in Keras get_weights() order; count must equal the weight's
 * element count (d->weights[index].count). */
KILN_HIDDEN int64_t kiln_num_weights(const kiln_instance *inst);
KILN_HIDDEN int kiln_get_weight(kiln_instance *inst, int index, float *dst, int64_t count);
KILN_HIDDEN int kiln_set_weight(kiln_instance *inst, int index, const float *src, int64_t count);

/* The whole state (weights and optimizer slots), the iteration count and the
 * seed, in the format described in kiln_runtime.c (a header naming the model
 * and its weight layout, a checksum of everything). Save writes
 * `path.tmp.<pid>.<n>`, fsyncs it, renames it over `path` and fsyncs the
 * folder, and removes the temporary files of earlier saves to `path` that
 * were cut off (see kiln_runtime.c); load reads the file into a scratch
 * buffer and validates it completely before it changes anything. */
KILN_HIDDEN int kiln_save_weights(kiln_instance *inst, const char *path);
KILN_HIDDEN int kiln_load_weights(kiln_instance *inst, const char *path);

KILN_HIDDEN void kiln_set_seed(kiln_instance *inst, uint64_t seed);
KILN_HIDDEN int64_t kiln_iterations(const kiln_instance *inst);
KILN_HIDDEN const char *kiln_last_error(const kiln_instance *inst);
/* on != 0: predict, train and evaluate first check every f32 input (and
 * target) for NaN and infinities and fail naming the tensor and the row;
 * off (0) by default. */
KILN_HIDDEN int kiln_set_check_inputs(kiln_instance *inst, int on);
KILN_HIDDEN int kiln_last_metrics(const kiln_instance *inst, float *dst, int count);

/* Threads: the instance's calls split large matrix products and large loops
 * over a pool of threads (created once per library, when the first instance
 * that wants more than one thread is created or told so; never inside a
 * call). The split is fixed by the sizes alone, so results are bit-identical
 * whatever the thread count. `threads` is 1 to KILN_MAX_THREADS, or 0 for the
 * default: $KILN_NUM_THREADS, else the number of online CPUs. */
KILN_HIDDEN int kiln_set_num_threads(kiln_instance *inst, int threads);

/* Zeroes the state stateful recurrent layers carry between calls (kiln_model_desc.carried). */
KILN_HIDDEN int kiln_reset_states(kiln_instance *inst);

/* The register-block sizes 1 to 12 of the runtime's kernels (kiln_gemm.c, kiln_conv.c): M(size, NV)
 * for each, to generate one kernel per size and the table that picks one by size. */
#define KILN_SIZES_1_TO_12(M, NV) \
    M(1, NV) M(2, NV) M(3, NV) M(4, NV) M(5, NV) M(6, NV) M(7, NV) M(8, NV) M(9, NV) M(10, NV) M(11, NV) M(12, NV)

/* The thread count of the instance whose call runs on this thread (1 outside calls). */
KILN_HIDDEN int kiln_thread_count(void);

/* For generated code. A task runs item `index` (of `count`) of a job. */
typedef void (*kiln_task_fn)(void *ctx, int64_t index);
/* Runs fn(ctx, 0) ... fn(ctx, count - 1), on the calling thread and up to
 * threads-1 pool threads of the current call's instance, and returns when all
 * are done. The items must be independent. */
KILN_HIDDEN void kiln_parallel_for(int64_t count, kiln_task_fn fn, void *ctx);
/* A loop kernel over [lo, hi) of its outermost loop. */
typedef void (*kiln_range_fn)(void *ctx, int64_t lo, int64_t hi);
/* Runs fn over [0, extent) in chunks whose bounds depend only on extent and
 * work (the loop's estimated cost), in parallel as kiln_parallel_for. */
KILN_HIDDEN void kiln_parallel_loop(int64_t extent, int64_t work, kiln_range_fn fn, void *ctx);
/* kiln_sgemm's product, a large one cut into fixed blocks of rows (or columns)
 * of C run as a parallel job (the blocks depend on the sizes alone).
 * trans_*: 0 or 1; beta: 0 or 1. */
KILN_HIDDEN void kiln_gemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, const float *a,
                           int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* x[j] = relu?(x[j] + bias[j]) for j < count (relu: 0 or 1): a layer's epilogue. */
KILN_HIDDEN void kiln_add_bias(float *restrict x, const float *restrict bias, int64_t count, int32_t relu);

/* kiln_gemm (beta 0) followed by C[r][j] = relu?(C[r][j] + bias[j]) (relu: 0 or 1), block by block. */
KILN_HIDDEN void kiln_gemm_bias(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                                const float *b, int64_t ldb, float *c, int64_t ldc, const float *bias, int32_t relu);

/* The seed train/evaluate receive for a step: splitmix64 of the instance seed
 * and the iteration. Exposed for tests. */
KILN_HIDDEN uint64_t kiln_step_seed(uint64_t seed, int64_t iteration);

/* dx (n, H, W, C) = the gradient of a convolution with respect to its input, from
 * dy (n, OH, OW, F) and the filters w (kh, kw, C, F), NHWC (kiln_conv.c). C must be
 * a multiple of 16 and kh*kw*F*C + F at most KILN_CONV_STACK_FLOATS. */
#define KILN_CONV_STACK_FLOATS 16384
KILN_HIDDEN void kiln_conv2d_grad_input(const float *dy, const float *w, float *dx, int64_t n, int64_t H, int64_t W,
                                        int64_t C, int64_t OH, int64_t OW, int64_t F, int64_t kh, int64_t kw,
                                        int64_t sh, int64_t sw, int64_t pt, int64_t pl);

/* dw (kh, kw, C, F) = the gradient of a convolution with respect to its filters, from
 * x (n, H, W, C) and dy (n, OH, OW, F), NHWC (kiln_conv.c). F must be a multiple of 16. */
KILN_HIDDEN void kiln_conv2d_grad_filter(const float *x, const float *dy, float *dw, int64_t n, int64_t H, int64_t W,
                                         int64_t C, int64_t OH, int64_t OW, int64_t F, int64_t kh, int64_t kw,
                                         int64_t sh, int64_t sw, int64_t pt, int64_t pl);

/* y (n, OH, OW, F) = x (n, H, W, C) convolved with w (kh, kw, C, F), NHWC
 * (kiln_conv.c), then y += bias per filter and relu when bias is not NULL
 * (relu: 0 or 1). F must be a multiple of 16. */
KILN_HIDDEN void kiln_conv2d(const float *x, const float *w, float *y, int64_t n, int64_t H, int64_t W, int64_t C,
                             int64_t OH, int64_t OW, int64_t F, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                             int64_t pt, int64_t pl, const float *bias, int32_t relu);

/* The same for a 3x3 filter at stride 1 by Winograd's F(2x2, 3x3) (kiln_winograd.c), where
 * kiln_winograd_fits(kh, kw, sh, sw, C, F) holds: that geometry, and C and F that fit. flipped 1
 * takes w as (3, 3, F, C) turned half a turn (the input gradient's filters). kiln_conv2d and
 * kiln_conv2d_grad_input choose it themselves. */
KILN_HIDDEN int kiln_winograd_fits(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t C, int64_t F);
KILN_HIDDEN void kiln_winograd_conv3x3(const float *x, const float *w, int flipped, float *y, int64_t n, int64_t H,
                                       int64_t W, int64_t C, int64_t OH, int64_t OW, int64_t F, int64_t pt, int64_t pl,
                                       const float *bias, int32_t relu);

/* A linear-chain CRF (kiln_crf.c, the definition in KilnIR/Ops/CRF.swift): emissions em (rows,
 * steps, n), transitions (n, n), start (n), end (n), tags (rows, steps), mask (rows, steps) 0/1 bytes
 * or NULL. nll (rows): each row's negative log-likelihood of its tags. The gradient scales row r by
 * dnll[r] and writes d em (rows, steps, n) and each row's d transitions (rows, n, n), d start and
 * d end (rows, n). Viterbi writes the best tags (rows, steps) and its backpointers (rows, steps, n).
 * n is at most KILN_CRF_MAX_TAGS (ChainCRF.maxTags in KilnIR/Ops/CRF.swift). */
#define KILN_CRF_MAX_TAGS 1024
KILN_HIDDEN void kiln_crf_nll(const float *em, const float *trans, const float *start, const float *end,
                              const int32_t *tags, const uint8_t *mask, float *nll, int64_t rows, int64_t steps, int64_t n);
KILN_HIDDEN void kiln_crf_nll_grad(const float *em, const float *trans, const float *start, const float *end,
                                   const int32_t *tags, const float *dnll, const uint8_t *mask, float *dem, float *dtrans,
                                   float *dstart, float *dend, int64_t rows, int64_t steps, int64_t n);
KILN_HIDDEN void kiln_crf_viterbi(const float *em, const float *trans, const float *start, const float *end,
                                  const uint8_t *mask, int32_t *path, int32_t *pointers, int64_t rows, int64_t steps, int64_t n);

/* C = op(A)·op(B) (beta 0) or C += op(A)·op(B) (beta 1), row-major (kiln_gemm.c). */
KILN_HIDDEN void kiln_sgemm(int32_t trans_a, int32_t trans_b, int64_t M, int64_t N, int64_t K, const float *A,
                            int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* The kiln_api table for a desc, as the generated glue defines it:
 *   static const kiln_api NAME__api = KILN_API_INIT(&NAME__desc); */
#define KILN_API_INIT(desc_ptr) {                                           \
    KILN_ABI_VERSION, (int32_t)sizeof(kiln_api), (desc_ptr),                \
    kiln_create, kiln_destroy, kiln_predict, kiln_reserve,                  \
    kiln_train_step, kiln_evaluate, kiln_num_weights,                       \
    kiln_get_weight, kiln_set_weight, kiln_save_weights, kiln_load_weights, \
    kiln_set_seed, kiln_iterations, kiln_last_error, kiln_last_metrics,     \
    kiln_predict_steps, kiln_train_step_steps, kiln_evaluate_steps,         \
    kiln_set_num_threads, kiln_set_check_inputs, kiln_reset_states }

#ifdef __cplusplus
}
#endif
#endif
