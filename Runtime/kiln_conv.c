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
    if (kiln_winograd_fits(kh, kw, sh, sw, F, C)) {
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
KILN_SIZES_1_TO_12(FORWARD_BLOCK, 2)
KILN_SIZES_1_TO_12(FORWARD_BLOCK, 1)

typedef void (*forward_fn)(const conv_fwd_job *, int64_t, int64_t, int64_t, int64_t);
#define FORWARD_FN(P, NV) forward_##P##x##NV,
static const forward_fn forward_by_pixels[2][13] = {
    { NULL, KILN_SIZES_1_TO_12(FORWARD_FN, 1) },
    { NULL, KILN_SIZES_1_TO_12(FORWARD_FN, 2) },
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
    if (kiln_winograd_fits(kh, kw, sh, sw, C, F)) {
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

/* ------------------------------------------------------------- filter gradient */

/* dW[i, j, c, f] = sum over images n and output pixels (oh, ow) of
 *                  x[n, oh*sh + i - pt, ow*sw + j - pl, c] * dy[n, oh, ow, f]
 *
 * The im2col route writes every patch out (for a 24x10 map of 32 channels, 9
 * times the image) and reads it back in a product. Here a block of R channels
 * x 32 filters of one tap stays in registers while the pixels stream by: for
 * each pixel, R channels of x broadcast against 32 filters of dy. The images
 * are taken a chunk at a time (about 512 KiB of x and dy, which stay in cache
 * while every tap and block of channels passes over them), and within a chunk
 * the (tap, channel block) pairs are shared out over the thread pool, each
 * adding to its own part of dW; chunks run in order, so every element of dW
 * is summed in the same order whatever the thread count. F must be a multiple
 * of 16 (ConvToGemm.swift uses im2col and a product otherwise). */

typedef struct {
    const float *x, *dy;
    float *dw;
    int64_t H, W, C, OH, OW, F, kh, kw, sh, sw, pt, pl;
    int64_t img0, img1;            /* the chunk */
    int64_t cblocks;               /* channel blocks of at most MAX_PIX rows, sizes as even as possible */
    int first;                     /* the first chunk: dW is written, not added to */
} conv_gf_job;

/* Channels [c0, c0 + R), filters [f0, f0 + 16*NV) of tap (i, jj), over the chunk's images. */
#define GRAD_FILTER_BLOCK(R, NV)                                                                   \
    static void grad_filter_##R##x##NV(const conv_gf_job *j, int64_t i, int64_t jj, int64_t c0, int64_t f0) { \
        const int64_t H = j->H, W = j->W, C = j->C, OH = j->OH, OW = j->OW, F = j->F, sh = j->sh, sw = j->sw; \
        float *out = j->dw + ((i * j->kw + jj) * C + c0) * F + f0;                                 \
        v16 acc[R][NV];                                                                            \
        for (int r = 0; r < R; r++)                                                                \
            for (int v = 0; v < NV; v++) acc[r][v] = j->first ? (v16){ 0 } : *(const v16 *)(out + r * F + 16 * v); \
        /* The output columns whose input column ow*sw + jj - pl lies inside the image. */         \
        int64_t lo = jj < j->pl ? (j->pl - jj + sw - 1) / sw : 0;                                  \
        int64_t hi = W - 1 + j->pl - jj < 0 ? 0 : (W - 1 + j->pl - jj) / sw + 1;                   \
        if (hi > OW) hi = OW;                                                                      \
        for (int64_t img = j->img0; img < j->img1; img++)                                          \
            for (int64_t oh = 0; oh < OH; oh++) {                                                  \
                int64_t h = oh * sh + i - j->pt;                                                   \
                if (h < 0 || h >= H) continue;                                                     \
                const float *xp = j->x + ((img * H + h) * W + lo * sw + jj - j->pl) * C + c0;      \
                const float *dp = j->dy + ((img * OH + oh) * OW + lo) * F + f0;                    \
                for (int64_t ow = lo; ow < hi; ow++, xp += sw * C, dp += F) {                      \
                    v16 d[NV];                                                                     \
                    for (int v = 0; v < NV; v++) d[v] = *(const v16 *)(dp + 16 * v);               \
                    for (int r = 0; r < R; r++)                                                    \
                        for (int v = 0; v < NV; v++) acc[r][v] += xp[r] * d[v];                    \
                }                                                                                  \
            }                                                                                      \
        for (int r = 0; r < R; r++)                                                                \
            for (int v = 0; v < NV; v++) *(v16 *)(out + r * F + 16 * v) = acc[r][v];               \
    }
KILN_SIZES_1_TO_12(GRAD_FILTER_BLOCK, 2)
KILN_SIZES_1_TO_12(GRAD_FILTER_BLOCK, 1)

typedef void (*grad_filter_fn)(const conv_gf_job *, int64_t, int64_t, int64_t, int64_t);
#define GRAD_FILTER_FN(R, NV) grad_filter_##R##x##NV,
static const grad_filter_fn grad_filter_by_rows[2][13] = {
    { NULL, KILN_SIZES_1_TO_12(GRAD_FILTER_FN, 1) },
    { NULL, KILN_SIZES_1_TO_12(GRAD_FILTER_FN, 2) },
};

/* Item = tap * cblocks + channel block: every filter of that tap and block of channels. */
static void grad_filter_item(void *ctx, int64_t item) {
    const conv_gf_job *j = ctx;
    int64_t tap = item / j->cblocks, b = item % j->cblocks;
    int64_t c0 = j->C * b / j->cblocks, rows = j->C * (b + 1) / j->cblocks - c0;
    int64_t i = tap / j->kw, jj = tap % j->kw, f0 = 0;
    for (; f0 + 32 <= j->F; f0 += 32) grad_filter_by_rows[1][rows](j, i, jj, c0, f0);
    for (; f0 < j->F; f0 += 16) grad_filter_by_rows[0][rows](j, i, jj, c0, f0);
}

KILN_HIDDEN void kiln_conv2d_grad_filter(const float *x, const float *dy, float *dw, int64_t n, int64_t H, int64_t W,
                                         int64_t C, int64_t OH, int64_t OW, int64_t F, int64_t kh, int64_t kw,
                                         int64_t sh, int64_t sw, int64_t pt, int64_t pl) {
    if (n <= 0) {
        memset(dw, 0, (size_t)(kh * kw * C * F) * sizeof(float));
        return;
    }
    int64_t image_bytes = (H * W * C + OH * OW * F) * (int64_t)sizeof(float);
    int64_t chunk = (512 * 1024) / image_bytes;
    if (chunk < 1) chunk = 1;
    conv_gf_job j = { x, dy, dw, H, W, C, OH, OW, F, kh, kw, sh, sw, pt, pl, 0, 0, (C + MAX_PIX - 1) / MAX_PIX, 1 };
    for (int64_t img0 = 0; img0 < n; img0 += chunk) {
        j.img0 = img0;
        j.img1 = img0 + chunk < n ? img0 + chunk : n;
        j.first = img0 == 0;
        kiln_parallel_for(kh * kw * j.cblocks, grad_filter_item, &j);
    }
}
