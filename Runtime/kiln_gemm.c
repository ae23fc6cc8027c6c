/* kiln_gemm.c: the matrix products of a compiled model.
 *
 * Why not OpenBLAS for these: a model's products are small and skinny (a
 * recurrent step's h·U is 15 x 128 x 512; a batch-1 step 1 x 20 x 80), where
 * OpenBLAS spends its time packing the operands on every call and handing work
 * to its threads, and where its kernel is chosen by OPENBLAS_CORETYPE rather
 * than by the machine the library was compiled for. These kernels read the
 * operands where they lie and keep a block of C in vector registers across the
 * whole K loop; they are compiled for the host (-march=native) like the
 * generated kernels, with GCC's vector extensions (AVX-512 here, AVX2 halves
 * elsewhere). Measured on this machine (2 cores, AVX-512): 15x128x512 in 23 us
 * against 130-270 us for OpenBLAS; 268x128x512 in 0.41 ms against 0.79-1.3 ms.
 *
 * kiln_sgemm computes C = op(A)·op(B) (beta 0) or C += op(A)·op(B) (beta 1),
 * row-major, op = transpose when the flag is set, as cblas_sgemm with alpha 1.
 * Every element of C is computed the same way whatever the rows around it, so
 * a row of C does not depend on how the rows are split (among threads, say).
 */
#include <stdint.h>

#include "kiln_runtime.h"

/* The slice of K a product sums at a time (see kiln_sgemm). */
#define KILN_GEMM_K_SLICE 512

/* The largest Bᵀ (in floats, 64 KiB) transposed on the caller's stack. */
#define KILN_GEMM_STACK_FLOATS 16384

typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));

/* C[MR rows x 16*NV cols] (+)= A·B with A element (r, k) at A[r*ar + k*ak] and B row-major. */
#define NN_BLOCK(MR, NV)                                                                          \
    static inline void nn_##MR##x##NV(int64_t K, const float *A, int64_t ar, int64_t ak,          \
                                      const float *B, int64_t ldb, float *C, int64_t ldc, int acc) { \
        v16 c[MR][NV];                                                                            \
        for (int r = 0; r < MR; r++)                                                              \
            for (int v = 0; v < NV; v++) c[r][v] = acc ? *(const v16 *)(C + r * ldc + 16 * v) : (v16){0}; \
        for (int64_t k = 0; k < K; k++) {                                                         \
            v16 b[NV];                                                                            \
            for (int v = 0; v < NV; v++) b[v] = *(const v16 *)(B + k * ldb + 16 * v);             \
            for (int r = 0; r < MR; r++) {                                                        \
                float a = A[r * ar + k * ak];                                                     \
                for (int v = 0; v < NV; v++) c[r][v] += a * b[v];                                 \
            }                                                                                     \
        }                                                                                         \
        for (int r = 0; r < MR; r++)                                                              \
            for (int v = 0; v < NV; v++) *(v16 *)(C + r * ldc + 16 * v) = c[r][v];                \
    }
KILN_SIZES_1_TO_12(NN_BLOCK, 2)
NN_BLOCK(4, 1) NN_BLOCK(1, 1)

/* The 32-column block kernels by row count. */
typedef void (*nn_fn)(int64_t, const float *, int64_t, int64_t, const float *, int64_t, float *, int64_t, int);
#define NN_FN(MR, NV) nn_##MR##x##NV,
static const nn_fn nn_by_rows[13] = { NULL, KILN_SIZES_1_TO_12(NN_FN, 2) };

static void gemm_nt(int64_t M, int64_t N, int64_t K, const float *A, int64_t ar, int64_t ak, const float *B,
                    int64_t ldb, float *C, int64_t ldc, int acc);

static void gemm_nn(int64_t M, int64_t N, int64_t K, const float *A, int64_t ar, int64_t ak, const float *B,
                    int64_t ldb, float *C, int64_t ldc, int acc) {
    int64_t n = 0;
    for (; n + 32 <= N; n += 32) {
        int64_t m = 0;
        /* Rows in blocks of 6; a short remainder (or a whole M of 7 to 12, a recurrent
         * step's rows) joins the last block, so B passes once per block and no block is
         * so short that its few accumulators wait on the multiply-add latency. */
        for (; M - m > 12; m += 6) nn_6x2(K, A + m * ar, ar, ak, B + n, ldb, C + m * ldc + n, ldc, acc);
        if (m < M) nn_by_rows[M - m](K, A + m * ar, ar, ak, B + n, ldb, C + m * ldc + n, ldc, acc);
    }
    for (; n + 16 <= N; n += 16) {
        int64_t m = 0;
        for (; m + 4 <= M; m += 4) nn_4x1(K, A + m * ar, ar, ak, B + n, ldb, C + m * ldc + n, ldc, acc);
        for (; m < M; m++) nn_1x1(K, A + m * ar, ar, ak, B + n, ldb, C + m * ldc + n, ldc, acc);
    }
    if (n == N) return;
    int64_t tail = N - n;
    if (ak == 1 && tail * K <= KILN_GEMM_STACK_FLOATS) {
        /* The last columns (fewer than 16: a narrow output layer) as dot products along k over
         * their transposed copy, which vectorize where a column loop cannot. */
        float bt[tail * K];
        for (int64_t j = 0; j < tail; j++)
            for (int64_t k = 0; k < K; k++) bt[j * K + k] = B[k * ldb + n + j];
        gemm_nt(M, tail, K, A, ar, 1, bt, K, C + n, ldc, acc);
        return;
    }
    for (; n < N; n++)
        for (int64_t m = 0; m < M; m++) {
            float s = acc ? C[m * ldc + n] : 0.0f;
            for (int64_t k = 0; k < K; k++) s += A[m * ar + k * ak] * B[k * ldb + n];
            C[m * ldc + n] = s;
        }
}

/* C (+)= op(A)·Bᵀ with B (N x K) row-major: dot products along k. */
static void gemm_nt(int64_t M, int64_t N, int64_t K, const float *A, int64_t ar, int64_t ak, const float *B,
                    int64_t ldb, float *C, int64_t ldc, int acc) {
    if (ak != 1) { /* Aᵀ·Bᵀ: rare; plain loops */
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                float s = acc ? C[m * ldc + n] : 0.0f;
                for (int64_t k = 0; k < K; k++) s += A[m * ar + k * ak] * B[n * ldb + k];
                C[m * ldc + n] = s;
            }
        return;
    }
    int64_t kv = K / 16 * 16;
    for (int64_t m = 0; m < M; m += 2) {
        int rows = M - m >= 2 ? 2 : 1;
        for (int64_t n = 0; n < N; n += 4) {
            int cols = N - n >= 4 ? 4 : (int)(N - n);
            v16 s[2][4] = {{{0}}};
            for (int64_t k = 0; k < kv; k += 16)
                for (int r = 0; r < rows; r++) {
                    v16 a = *(const v16 *)(A + (m + r) * ar + k);
                    for (int j = 0; j < cols; j++) s[r][j] += a * *(const v16 *)(B + (n + j) * ldb + k);
                }
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < cols; j++) {
                    float t = 0.0f;
                    for (int l = 0; l < 16; l++) t += s[r][j][l];
                    for (int64_t k = kv; k < K; k++) t += A[(m + r) * ar + k] * B[(n + j) * ldb + k];
                    float *c = C + (m + r) * ldc + n + j;
                    *c = acc ? *c + t : t;
                }
        }
    }
}

KILN_HIDDEN void kiln_sgemm(int32_t trans_a, int32_t trans_b, int64_t M, int64_t N, int64_t K, const float *A,
                            int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    int acc = beta != 0.0f;
    if (K <= 0) {
        if (!acc)
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) C[m * ldc + n] = 0.0f;
        return;
    }
    int64_t ar = trans_a ? 1 : lda, ak = trans_a ? lda : 1;
    if (!trans_b) {
        /* A long sum (a weight gradient over every pixel of a batch: K in the tens of
         * thousands) runs in slices of K, so the slice of B stays in cache while every
         * block of rows passes over it, instead of B streaming from memory once per block. */
        for (int64_t k0 = 0; k0 < K; k0 += KILN_GEMM_K_SLICE) {
            int64_t kc = K - k0 < KILN_GEMM_K_SLICE ? K - k0 : KILN_GEMM_K_SLICE;
            gemm_nn(M, N, kc, A + k0 * ak, ar, ak, B + k0 * ldb, ldb, C, ldc, acc || k0 > 0);
        }
    } else if (N * K <= KILN_GEMM_STACK_FLOATS) {
        /* A small Bᵀ (a weight, in a layer's backward pass) is transposed on the stack: the
         * row-blocked kernel beats dot products when K is short. */
        float bt[N * K];
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < K; k++) bt[k * N + n] = B[n * ldb + k];
        gemm_nn(M, N, K, A, ar, ak, bt, N, C, ldc, acc);
    } else if (N <= KILN_GEMM_STACK_FLOATS / 64) {
        /* A larger Bᵀ (a layer's input gradient, dy·Wᵀ) in slices of K whose transpose fits
         * the stack, each a row-blocked product added to C. */
        int64_t ks = KILN_GEMM_STACK_FLOATS / N;
        float bt[ks * N];
        for (int64_t k0 = 0; k0 < K; k0 += ks) {
            int64_t kc = K - k0 < ks ? K - k0 : ks;
            for (int64_t n = 0; n < N; n++)
                for (int64_t k = 0; k < kc; k++) bt[k * N + n] = B[n * ldb + k0 + k];
            gemm_nn(M, N, kc, A + k0 * ak, ar, ak, bt, N, C, ldc, acc || k0 > 0);
        }
    } else {
        gemm_nt(M, N, K, A, ar, ak, B, ldb, C, ldc, acc);
    }
}
