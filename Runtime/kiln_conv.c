/* kiln_conv.c: a 2-D convolution and its gradient with respect to its input,
 * computed directly (NHWC, any strides and padding). The forward pass:
 *
 *   y[n, oh, ow, f] = sum over taps (i, j) and channels c of
 *                     x[n, oh*sh + i - pad_top, ow*sw + j - pad_left, c] * W[i, j, c, f]
 *
 * and the input gradient:
 *
 *   dx[n, h, w, c] = sum over taps (i, j) and filters f of
 *                    dy[n, oh, ow, f] * W[i, j, c, f]
 *   where h = oh*sh + i - pad_top and w = ow*sw + j - pad_left.
 *
 * The im2col route makes dy·Wᵀ, a (pixels x kh·kw·C) matrix, and then sums
 * it back into the image (col2im): for a 24x10x32 map that matrix is 9x the
 * image, written and read once more. Here each block of 6 input pixels keeps
 * its 32 channels in vector registers across all taps and filters, reading
 * dy rows where they lie (a row of zeros stands for a tap outside dy) and the
 * filters transposed once on the stack. Rows of the image are shared out over
 * the thread pool in fixed blocks, so the result does not depend on the
 * thread count. The input gradient needs C a multiple of 16 and F*C*kh*kw
 * small enough for the stack, the forward pass F a multiple of 16; the
 * compiler uses im2col and a product otherwise (ConvToGemm.swift).
 */
#include <stdint.h>
#include <string.h>

#include "kiln_runtime.h"

typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));

typedef struct {
    const float *dy, *wt;          /* wt[tap][f][c] */
    float *dx;
    int64_t H, W, C, OH, OW, F, kh, kw, sh, sw, pt, pl;
    const float *zero;             /* F zeros */
} conv_job;

#define PIX 6

/* Channels [c0, c0 + 16*NV) of PIX pixels starting at (img, h, w0). */
#define GRAD_INPUT_BLOCK(NV)                                                                       \
    static void grad_input_##NV(const conv_job *j, int64_t img, int64_t h, int64_t w0, int64_t c0) { \
        v16 acc[PIX][NV];                                                                          \
        for (int r = 0; r < PIX; r++)                                                              \
            for (int v = 0; v < NV; v++) acc[r][v] = (v16){0};                                     \
        for (int64_t i = 0; i < j->kh; i++) {                                                      \
            int64_t th = h + j->pt - i;                                                            \
            int64_t oh = th / j->sh;                                                               \
            int row_ok = th >= 0 && th % j->sh == 0 && oh < j->OH;                                 \
            for (int64_t jj = 0; jj < j->kw; jj++) {                                               \
                const float *a[PIX];                                                               \
                for (int r = 0; r < PIX; r++) {                                                    \
                    int64_t tw = w0 + r + j->pl - jj, ow = tw / j->sw;                             \
                    int ok = row_ok && w0 + r < j->W && tw >= 0 && tw % j->sw == 0 && ow < j->OW;  \
                    a[r] = ok ? j->dy + ((img * j->OH + oh) * j->OW + ow) * j->F : j->zero;        \
                }                                                                                  \
                const float *b = j->wt + (i * j->kw + jj) * j->F * j->C + c0;                      \
                for (int64_t f = 0; f < j->F; f++) {                                               \
                    v16 bv[NV];                                                                    \
                    for (int v = 0; v < NV; v++) bv[v] = *(const v16 *)(b + f * j->C + 16 * v);    \
                    for (int r = 0; r < PIX; r++) {                                                \
                        float x = a[r][f];                                                         \
                        for (int v = 0; v < NV; v++) acc[r][v] += x * bv[v];                       \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < PIX && w0 + r < j->W; r++)                                             \
            for (int v = 0; v < NV; v++)                                                           \
                *(v16 *)(j->dx + ((img * j->H + h) * j->W + w0 + r) * j->C + c0 + 16 * v) = acc[r][v]; \
    }
GRAD_INPUT_BLOCK(2)
GRAD_INPUT_BLOCK(1)

/* Image rows [ROWS*i, ROWS*(i+1)) of all images, flattened as img*H + h. */
#define ROWS 8

/* One image row (img*H + h) of dx. */
static void grad_input_row(const conv_job *j, int64_t row) {
    int64_t img = row / j->H, h = row % j->H;
    for (int64_t w0 = 0; w0 < j->W; w0 += PIX) {
        int64_t c0 = 0;
        for (; c0 + 32 <= j->C; c0 += 32) grad_input_2(j, img, h, w0, c0);
        for (; c0 < j->C; c0 += 16) grad_input_1(j, img, h, w0, c0);
    }
}

static void grad_input_rows(void *ctx, int64_t i) {
    for (int64_t row = i * ROWS; row < (i + 1) * ROWS; row++) grad_input_row(ctx, row);
}

KILN_HIDDEN void kiln_conv2d_grad_input(const float *dy, const float *w, float *dx, int64_t n, int64_t H, int64_t W,
                                        int64_t C, int64_t OH, int64_t OW, int64_t F, int64_t kh, int64_t kw,
                                        int64_t sh, int64_t sw, int64_t pt, int64_t pl) {
    if (n <= 0) return;
    if (kh == 3 && kw == 3 && sh == 1 && sw == 1 && kiln_winograd_fits(F, C)) {
        /* The input gradient of a stride-1 convolution is the convolution of dy, padded by
         * kh - 1 - pt, with the filters turned half a turn and transposed. */
        kiln_winograd_conv3x3(dy, w, 1, dx, n, OH, OW, F, H, W, C, 2 - pt, 2 - pl, NULL, 0);
        return;
    }
    int64_t taps = kh * kw;
    float wt[taps * F * C + F];     /* filters as [tap][f][c], then F zeros */
    for (int64_t t = 0; t < taps; t++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t f = 0; f < F; f++) wt[(t * F + f) * C + c] = w[(t * C + c) * F + f];
    memset(wt + taps * F * C, 0, (size_t)F * sizeof(float));
    conv_job j = { dy, wt, dx, H, W, C, OH, OW, F, kh, kw, sh, sw, pt, pl, wt + taps * F * C };
    int64_t rows = n * H;
    int64_t blocks = rows / ROWS;
    kiln_parallel_for(blocks, grad_input_rows, &j);
    /* The last rows (fewer than a block) on this thread. */
    for (int64_t row = blocks * ROWS; row < rows; row++) grad_input_row(&j, row);
}

/* ------------------------------------------------------------- forward */

typedef struct {
    const float *x, *w;
    float *y;
    int64_t H, W, C, OH, OW, F, kh, kw, sh, sw, pt, pl;
    const float *zero;             /* C zeros */
    const float *bias;             /* added to each filter's map, or NULL; then relu when relu is 1 */
    int relu;
} conv_fwd_job;

/* Filters [f0, f0 + 16*NV) of P output pixels starting at (img, oh, ow0), P <= OW - ow0. */
#define FORWARD_BLOCK(P, NV)                                                                       \
    static void forward_##P##x##NV(const conv_fwd_job *j, int64_t img, int64_t oh, int64_t ow0, int64_t f0) { \
        v16 acc[P][NV];                                                                            \
        for (int r = 0; r < P; r++)                                                                \
            for (int v = 0; v < NV; v++) acc[r][v] = (v16){0};                                     \
        for (int64_t i = 0; i < j->kh; i++) {                                                      \
            int64_t h = oh * j->sh + i - j->pt;                                                    \
            int row_ok = h >= 0 && h < j->H;                                                       \
            for (int64_t jj = 0; jj < j->kw; jj++) {                                               \
                const float *a[P];                                                                 \
                for (int r = 0; r < P; r++) {                                                      \
                    int64_t w = (ow0 + r) * j->sw + jj - j->pl;                                    \
                    int ok = row_ok && w >= 0 && w < j->W;                                         \
                    a[r] = ok ? j->x + ((img * j->H + h) * j->W + w) * j->C : j->zero;             \
                }                                                                                  \
                const float *b = j->w + (i * j->kw + jj) * j->C * j->F + f0;                       \
                for (int64_t c = 0; c < j->C; c++) {                                               \
                    v16 bv[NV];                                                                    \
                    for (int v = 0; v < NV; v++) bv[v] = *(const v16 *)(b + c * j->F + 16 * v);    \
                    for (int r = 0; r < P; r++) {                                                  \
                        float x = a[r][c];                                                         \
                        for (int v = 0; v < NV; v++) acc[r][v] += x * bv[v];                       \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        for (int r = 0; r < P; r++)                                                                \
            for (int v = 0; v < NV; v++)                                                           \
                *(v16 *)(j->y + ((img * j->OH + oh) * j->OW + ow0 + r) * j->F + f0 + 16 * v) = acc[r][v]; \
    }
#define FORWARD_BLOCKS(NV)                                                                         \
    FORWARD_BLOCK(1, NV) FORWARD_BLOCK(2, NV) FORWARD_BLOCK(3, NV) FORWARD_BLOCK(4, NV)            \
    FORWARD_BLOCK(5, NV) FORWARD_BLOCK(6, NV) FORWARD_BLOCK(7, NV) FORWARD_BLOCK(8, NV)            \
    FORWARD_BLOCK(9, NV) FORWARD_BLOCK(10, NV) FORWARD_BLOCK(11, NV) FORWARD_BLOCK(12, NV)
FORWARD_BLOCKS(2)
FORWARD_BLOCKS(1)

typedef void (*forward_fn)(const conv_fwd_job *, int64_t, int64_t, int64_t, int64_t);
static const forward_fn forward_by_pixels[2][13] = {
    { NULL, forward_1x1, forward_2x1, forward_3x1, forward_4x1, forward_5x1, forward_6x1, forward_7x1, forward_8x1,
      forward_9x1, forward_10x1, forward_11x1, forward_12x1 },
    { NULL, forward_1x2, forward_2x2, forward_3x2, forward_4x2, forward_5x2, forward_6x2, forward_7x2, forward_8x2,
      forward_9x2, forward_10x2, forward_11x2, forward_12x2 },
};

/* The widest pixel block: 12 pixels x 32 filters keep 24 of the 32 vector registers. */
#define MAX_PIX 12

/* One output row, in as few pixel blocks as MAX_PIX allows, of sizes as even as
 * possible (an OW of 10 is one block of 10, not 6 + 4 padded to 12), so no
 * multiply-add is spent on a pixel past the row's end. */
static void forward_row(const conv_fwd_job *j, int64_t row) {
    int64_t img = row / j->OH, oh = row % j->OH;
    int64_t blocks = (j->OW + MAX_PIX - 1) / MAX_PIX;
    for (int64_t b = 0; b < blocks; b++) {
        int64_t ow0 = j->OW * b / blocks, pix = j->OW * (b + 1) / blocks - ow0;
        int64_t f0 = 0;
        for (; f0 + 32 <= j->F; f0 += 32) forward_by_pixels[1][pix](j, img, oh, ow0, f0);
        for (; f0 < j->F; f0 += 16) forward_by_pixels[0][pix](j, img, oh, ow0, f0);
    }
    if (!j->bias) return;
    /* The layer's bias and relu on the row just written, as the loop they replace computed them. */
    float *y = j->y + row * j->OW * j->F;
    for (int64_t p = 0; p < j->OW; p++) kiln_add_bias(y + p * j->F, j->bias, j->F, j->relu);
}

static void forward_rows(void *ctx, int64_t i) {
    for (int64_t row = i * ROWS; row < (i + 1) * ROWS; row++) forward_row(ctx, row);
}

KILN_HIDDEN void kiln_conv2d(const float *x, const float *w, float *y, int64_t n, int64_t H, int64_t W, int64_t C,
                             int64_t OH, int64_t OW, int64_t F, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                             int64_t pt, int64_t pl, const float *bias, int32_t relu) {
    if (n <= 0) return;
    if (kh == 3 && kw == 3 && sh == 1 && sw == 1 && kiln_winograd_fits(C, F)) {
        kiln_winograd_conv3x3(x, w, 0, y, n, H, W, C, OH, OW, F, pt, pl, bias, relu);
        return;
    }
    float zero[C];
    memset(zero, 0, (size_t)C * sizeof(float));
    conv_fwd_job j = { x, w, y, H, W, C, OH, OW, F, kh, kw, sh, sw, pt, pl, zero, bias, relu };
    int64_t rows = n * OH, blocks = rows / ROWS;
    kiln_parallel_for(blocks, forward_rows, &j);
    for (int64_t row = blocks * ROWS; row < rows; row++) forward_row(&j, row);
}
