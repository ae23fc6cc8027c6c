/* kiln_winograd.c: 3x3, stride-1 convolutions by Winograd's minimal filtering
 * F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural
 * Networks", 2016). Each 2x2 block of output pixels (a tile) is computed from
 * the 4x4 input patch d under it as
 *
 *   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
 *
 * summed over channels, where g is one 3x3 filter. The elementwise product,
 * summed over channels, is 16 independent products (tiles x C)·(C x F), one
 * per position of the 4x4 transformed patch: 16·C·F multiply-adds per tile
 * instead of the direct 36·C·F, 2.25 times fewer. The transforms' constants
 * are 0, ±1 and ±1/2, so the rounding error stays that of a direct
 * convolution to within a few units in the last place.
 *
 *   Bᵀ = | 1  0 -1  0 |    G = | 1    0    0   |    Aᵀ = | 1  1  1  0 |
 *        | 0  1  1  0 |        | 1/2  1/2  1/2 |         | 0  1 -1 -1 |
 *        | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
 *        | 0  1  0 -1 |        | 0    0    1   |
 *
 * Tiles are numbered over all images, rows and columns of tiles, and taken
 * TILES at a time: a block's transformed patches (16 x TILES x C) and products
 * (16 x TILES x F) stay in the first-level cache, and the products keep
 * TILES x 32 filters in 24 vector registers. Blocks are shared out over the
 * thread pool and each output pixel is computed within one block, so the
 * result does not depend on the thread count.
 */
#include <stdint.h>
#include <string.h>

#include "kiln_runtime.h"

typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));

#define TILES 12
/* The filters' transform lives on the caller's stack and a block's scratch on
 * each worker's: both are bounded (floats). */
#define MAX_FILTER_FLOATS (64 * 1024)
#define MAX_BLOCK_FLOATS (24 * 1024)

typedef struct {
    const float *x, *u;            /* u[pos][c][f]: the transformed filters */
    float *y;
    int64_t n, H, W, C, OH, OW, F, pt, pl;
    int64_t TH, TW;                /* tiles per image, down and across */
    const float *bias;
    int relu;
} wino_job;

KILN_HIDDEN int kiln_winograd_fits(int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t C, int64_t F) {
    return kh == 3 && kw == 3 && sh == 1 && sw == 1 && C % 16 == 0 && F % 16 == 0 && 16 * C * F <= MAX_FILTER_FLOATS
           && 16 * TILES * (C + F) <= MAX_BLOCK_FLOATS;
}

/* u[pos][c][f] = (G g Gᵀ)[pos] for the filter g = w[:, :, c, f] (w is (3, 3, C, F)); when
 * flipped, for g = w[2 - i, 2 - j, f, c] (w is (3, 3, F, C)): the filters of the input gradient. */
static void transform_filters(const float *w, float *u, int64_t C, int64_t F, int flipped) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t f = 0; f < F; f++) {
            float g[3][3], t[4][3];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    g[i][j] = flipped ? w[(((2 - i) * 3 + 2 - j) * F + f) * C + c] : w[((i * 3 + j) * C + c) * F + f];
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[0][j];
                t[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
                t[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
                t[3][j] = g[2][j];
            }
            for (int i = 0; i < 4; i++) {
                float r[4] = { t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]),
                               t[i][2] };
                for (int j = 0; j < 4; j++) u[((i * 4 + j) * C + c) * F + f] = r[j];
            }
        }
}

/* v[pos][p][c0..c0+16) = (Bᵀ d B)[pos] for tile p's patch, 16 channels at a time. The job's
 * fields are read into locals first: stores through the aliasing vector type would make the
 * compiler read them again after every store. */
static void transform_patch(const wino_job *j, int64_t tile, float *v, int64_t p) {
    const int64_t H = j->H, W = j->W, C = j->C, TH = j->TH, TW = j->TW;
    int64_t img = tile / (TH * TW), rest = tile % (TH * TW);
    int64_t h0 = rest / TW * 2 - j->pt, w0 = rest % TW * 2 - j->pl;
    static const float zero[16] = { 0 };
    const int inside = h0 >= 0 && h0 + 4 <= H && w0 >= 0 && w0 + 4 <= W;
    const float *base = j->x + ((img * H + h0) * W + w0) * C;
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
        v16 d[4][4], t[4][4];
        if (inside) {
            /* Most patches: one pointer and two strides, which keeps the sixteen in registers. */
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) d[a][b] = *(const v16 *)(base + (a * W + b) * C + c0);
        } else {
            for (int a = 0; a < 4; a++)
                for (int b = 0; b < 4; b++) {
                    int ok = h0 + a >= 0 && h0 + a < H && w0 + b >= 0 && w0 + b < W;
                    d[a][b] = *(const v16 *)(ok ? base + (a * W + b) * C + c0 : zero);
                }
        }
        for (int b = 0; b < 4; b++) {
            t[0][b] = d[0][b] - d[2][b];
            t[1][b] = d[1][b] + d[2][b];
            t[2][b] = d[2][b] - d[1][b];
            t[3][b] = d[1][b] - d[3][b];
        }
        float *out = v + p * C + c0;
        for (int a = 0; a < 4; a++) {
            *(v16 *)(out + ((a * 4 + 0) * TILES) * C) = t[a][0] - t[a][2];
            *(v16 *)(out + ((a * 4 + 1) * TILES) * C) = t[a][1] + t[a][2];
            *(v16 *)(out + ((a * 4 + 2) * TILES) * C) = t[a][2] - t[a][1];
            *(v16 *)(out + ((a * 4 + 3) * TILES) * C) = t[a][1] - t[a][3];
        }
    }
}

/* m[pos][p][f0..f0+16*NV) = sum over c of v[pos][p][c] * u[pos][c][f], for all TILES tiles. */
#define PRODUCT(NV)                                                                                \
    static void product_##NV(const wino_job *j, const float *v, float *m, int64_t pos, int64_t f0) { \
        v16 acc[TILES][NV];                                                                        \
        for (int p = 0; p < TILES; p++)                                                            \
            for (int k = 0; k < NV; k++) acc[p][k] = (v16){ 0 };                                   \
        const float *a = v + pos * TILES * j->C;                                                   \
        const float *b = j->u + pos * j->C * j->F + f0;                                            \
        for (int64_t c = 0; c < j->C; c++) {                                                       \
            v16 bv[NV];                                                                            \
            for (int k = 0; k < NV; k++) bv[k] = *(const v16 *)(b + c * j->F + 16 * k);            \
            for (int p = 0; p < TILES; p++) {                                                      \
                float s = a[p * j->C + c];                                                         \
                for (int k = 0; k < NV; k++) acc[p][k] += s * bv[k];                               \
            }                                                                                      \
        }                                                                                          \
        for (int p = 0; p < TILES; p++)                                                            \
            for (int k = 0; k < NV; k++) *(v16 *)(m + (pos * TILES + p) * j->F + f0 + 16 * k) = acc[p][k]; \
    }
PRODUCT(2)
PRODUCT(1)

typedef int32_t i16 __attribute__((vector_size(64), aligned(4)));

/* The 2x2 outputs of tile p from m[pos][p][f]: Aᵀ m A, then the bias and relu (x > 0 ? x : 0,
 * as kiln_add_bias has them) applied in registers: a separate kiln_add_bias pass over the
 * written pixels costs W3's predict about 5%. */
static void inverse_tile(const wino_job *j, int64_t tile, const float *m, int64_t p) {
    const int64_t OH = j->OH, OW = j->OW, F = j->F, TH = j->TH, TW = j->TW;
    const float *bias = j->bias;
    const int relu = j->relu;
    float *y = j->y;
    int64_t img = tile / (TH * TW), rest = tile % (TH * TW);
    int64_t oh0 = rest / TW * 2, ow0 = rest % TW * 2;
    int64_t rows = OH - oh0 < 2 ? 1 : 2, cols = OW - ow0 < 2 ? 1 : 2;
    const float *mp = m + p * F;
    for (int64_t f0 = 0; f0 < F; f0 += 16) {
        v16 s[2][4];
        for (int b = 0; b < 4; b++) {
            v16 m0 = *(const v16 *)(mp + (0 * 4 + b) * TILES * F + f0);
            v16 m1 = *(const v16 *)(mp + (1 * 4 + b) * TILES * F + f0);
            v16 m2 = *(const v16 *)(mp + (2 * 4 + b) * TILES * F + f0);
            v16 m3 = *(const v16 *)(mp + (3 * 4 + b) * TILES * F + f0);
            s[0][b] = m0 + m1 + m2;
            s[1][b] = m1 - m2 - m3;
        }
        v16 bv = bias ? *(const v16 *)(bias + f0) : (v16){ 0 };
        for (int a = 0; a < rows; a++) {
            v16 out[2] = { s[a][0] + s[a][1] + s[a][2] + bv, s[a][1] - s[a][2] - s[a][3] + bv };
            for (int b = 0; b < cols; b++) {
                v16 o = out[b];
                if (relu) o = (v16)((i16)o & (i16)(o > (v16){ 0 }));
                *(v16 *)(y + ((img * OH + oh0 + a) * OW + ow0 + b) * F + f0) = o;
            }
        }
    }
}

static void wino_block(void *ctx, int64_t block) {
    const wino_job *j = ctx;
    int64_t tiles = j->n * j->TH * j->TW, first = block * TILES;
    int64_t count = tiles - first < TILES ? tiles - first : TILES;
    float v[16 * TILES * j->C], m[16 * TILES * j->F];
    if (count < TILES) memset(v, 0, sizeof v);
    for (int64_t p = 0; p < count; p++) transform_patch(j, first + p, v, p);
    for (int64_t pos = 0; pos < 16; pos++) {
        int64_t f0 = 0;
        for (; f0 + 32 <= j->F; f0 += 32) product_2(j, v, m, pos, f0);
        for (; f0 < j->F; f0 += 16) product_1(j, v, m, pos, f0);
    }
    for (int64_t p = 0; p < count; p++) inverse_tile(j, first + p, m, p);
}

KILN_HIDDEN void kiln_winograd_conv3x3(const float *x, const float *w, int flipped, float *y, int64_t n, int64_t H,
                                       int64_t W, int64_t C, int64_t OH, int64_t OW, int64_t F, int64_t pt, int64_t pl,
                                       const float *bias, int32_t relu) {
    if (n <= 0) return;
    float u[16 * C * F];
    transform_filters(w, u, C, F, flipped);
    wino_job j = { x, u, y, n, H, W, C, OH, OW, F, pt, pl, (OH + 1) / 2, (OW + 1) / 2, bias, relu };
    int64_t tiles = n * j.TH * j.TW;
    kiln_parallel_for((tiles + TILES - 1) / TILES, wino_block, &j);
}
