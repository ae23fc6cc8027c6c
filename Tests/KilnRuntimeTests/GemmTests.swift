// The runtime's matrix products (Runtime/kiln_gemm.c) against a naive double
// loop, for every transpose combination, beta 0 and 1, leading dimensions
// wider than the matrices, and shapes that exercise every block and tail; and
// its direct and Winograd convolutions and convolution input gradients
// (Runtime/kiln_conv.c, kiln_winograd.c) against the definition, for strides,
// padding, channel counts and widths with tails.

import XCTest

final class GemmTests: XCTestCase {
    static let program = #"""
    #include <math.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include "kiln_runtime.h"

    static unsigned long long s = 12345;
    static float rnd(void) { s = s * 6364136223846793005ULL + 1442695040888963407ULL; return (float)((s >> 40) / 16777216.0) - 0.5f; }

    int main(void) {
        const int shapes[][3] = {{1, 1, 1}, {1, 20, 80}, {15, 128, 512}, {7, 33, 47}, {6, 64, 32}, {13, 5, 20},
                                 {64, 288, 32}, {2, 300, 3}, {31, 17, 129}, {5, 1000, 7}, {40, 130, 16}, {64, 600, 100}, {9, 333, 250}};
        double worst = 0;
        for (unsigned c = 0; c < sizeof shapes / sizeof shapes[0]; c++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++)
                    for (int beta = 0; beta < 2; beta++) {
                        int M = shapes[c][0], K = shapes[c][1], N = shapes[c][2];
                        int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
                        float *A = malloc(sizeof(float) * (ta ? K : M) * lda), *B = malloc(sizeof(float) * (tb ? N : K) * ldb);
                        float *C = malloc(sizeof(float) * M * ldc);
                        for (int i = 0; i < (ta ? K : M) * lda; i++) A[i] = rnd();
                        for (int i = 0; i < (tb ? N : K) * ldb; i++) B[i] = rnd();
                        for (int i = 0; i < M * ldc; i++) C[i] = rnd();
                        double *want = malloc(sizeof(double) * M * N);
                        for (int m = 0; m < M; m++)
                            for (int n = 0; n < N; n++) {
                                double t = beta ? C[m * ldc + n] : 0;
                                for (int k = 0; k < K; k++)
                                    t += (double)(ta ? A[k * lda + m] : A[m * lda + k]) * (tb ? B[n * ldb + k] : B[k * ldb + n]);
                                want[m * N + n] = t;
                            }
                        float pad = C[M * ldc - 1];
                        kiln_sgemm(ta, tb, M, N, K, A, lda, B, ldb, (float)beta, C, ldc);
                        for (int m = 0; m < M; m++)
                            for (int n = 0; n < N; n++) {
                                /* float32 sums of K products of magnitude < 0.25 */
                                double err = fabs(C[m * ldc + n] - want[m * N + n]) / (1e-6 * (K + 1));
                                if (err > worst) worst = err;
                            }
                        if (N + 2 == ldc && C[M * ldc - 1] != pad) { printf("wrote past the row\n"); return 1; }
                        free(A); free(B); free(C); free(want);
                    }
        printf("%g\n", worst);
        return 0;
    }
    """#

    func testProductsAgainstNaiveLoops() throws {
        let dir = try FakeModel.tempDir("kiln-gemm")
        try Self.program.write(toFile: dir + "/gemm.c", atomically: true, encoding: .utf8)
        try FakeModel.run("cc", ["-O2", "-march=native", "-I", FakeModel.runtimeDir, dir + "/gemm.c", FakeModel.runtimeDir + "/kiln_gemm.c",
                                 "-lm", "-o", dir + "/gemm"])
        let out = try FakeModel.run(dir + "/gemm", []).trimmingCharacters(in: .whitespacesAndNewlines)
        let worst = try XCTUnwrap(Double(out), "gemm test printed \(out)")
        // Error in units of 1e-6 * (K + 1): float32 rounding of K products and sums stays well inside 1.
        XCTAssertLessThan(worst, 1.0, "largest scaled error \(worst)")
    }

    static let convProgram = #"""
    #include <math.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include "kiln_runtime.h"

    static unsigned long long s = 777;
    static float rnd(void) { s = s * 6364136223846793005ULL + 1442695040888963407ULL; return (float)((s >> 40) / 16777216.0) - 0.5f; }

    int main(void) {
        /* n, H, W, C, F, kh, kw, sh, sw, pad_top, pad_left (OH, OW as Keras computes them) */
        const int cases[][11] = {{2, 26, 12, 32, 32, 3, 3, 1, 1, 0, 0}, {1, 7, 9, 16, 5, 3, 3, 1, 1, 1, 1},
                                 {3, 8, 11, 48, 8, 2, 2, 2, 2, 0, 0}, {1, 9, 13, 16, 24, 3, 5, 2, 1, 1, 2},
                                 {17, 5, 5, 32, 4, 1, 1, 1, 1, 0, 0},
                                 /* 3x3 at stride 1 with C and F multiples of 16 go by Winograd (kiln_winograd.c):
                                  * odd map sizes (a tile half outside), same padding, a last block of tiles cut short */
                                 {3, 9, 7, 16, 16, 3, 3, 1, 1, 1, 1}, {2, 7, 6, 32, 48, 3, 3, 1, 1, 0, 0},
                                 {5, 11, 9, 48, 32, 3, 3, 1, 1, 1, 1}};
        double worst = 0;
        for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            int n = cases[c][0], H = cases[c][1], W = cases[c][2], C = cases[c][3], F = cases[c][4];
            int kh = cases[c][5], kw = cases[c][6], sh = cases[c][7], sw = cases[c][8], pt = cases[c][9], pl = cases[c][10];
            int OH = (H + 2 * pt - kh) / sh + 1, OW = (W + 2 * pl - kw) / sw + 1;
            float *dy = malloc(sizeof(float) * n * OH * OW * F), *w = malloc(sizeof(float) * kh * kw * C * F);
            float *dx = malloc(sizeof(float) * n * H * W * C);
            for (int i = 0; i < n * OH * OW * F; i++) dy[i] = rnd();
            for (int i = 0; i < kh * kw * C * F; i++) w[i] = rnd();
            for (int i = 0; i < n * H * W * C; i++) dx[i] = NAN;
            kiln_conv2d_grad_input(dy, w, dx, n, H, W, C, OH, OW, F, kh, kw, sh, sw, pt, pl);
            for (int b = 0; b < n; b++) for (int h = 0; h < H; h++) for (int x = 0; x < W; x++) for (int ch = 0; ch < C; ch++) {
                double want = 0;
                for (int oh = 0; oh < OH; oh++) for (int ow = 0; ow < OW; ow++) {
                    int i = h - (oh * sh - pt), j = x - (ow * sw - pl);
                    if (i < 0 || i >= kh || j < 0 || j >= kw) continue;
                    for (int f = 0; f < F; f++)
                        want += (double)dy[((b * OH + oh) * OW + ow) * F + f] * w[((i * kw + j) * C + ch) * F + f];
                }
                double got = dx[((b * H + h) * W + x) * C + ch];
                double err = isnan(got) ? 1e30 : fabs(got - want) / (1e-6 * (kh * kw * F + 1));
                if (err > worst) worst = err;
            }
            free(dy); free(w); free(dx);
        }
        /* The forward pass: n, H, W, C, F, kh, kw, sh, sw, pad_top, pad_left */
        const int fwd[][11] = {{2, 28, 14, 1, 32, 3, 3, 1, 1, 0, 0}, {2, 26, 12, 32, 32, 3, 3, 1, 1, 0, 0},
                               {1, 9, 7, 3, 16, 3, 3, 2, 2, 1, 1}, {3, 6, 13, 5, 48, 2, 3, 1, 2, 0, 1},
                               {1, 5, 30, 16, 32, 3, 3, 1, 1, 1, 1}, {2, 4, 27, 8, 48, 1, 3, 1, 1, 0, 0},
                               /* Winograd's cases, as for the input gradient */
                               {3, 9, 7, 16, 16, 3, 3, 1, 1, 1, 1}, {1, 6, 5, 48, 32, 3, 3, 1, 1, 0, 0},
                               {2, 5, 5, 32, 16, 3, 3, 1, 1, 1, 1}, {5, 11, 9, 32, 32, 3, 3, 1, 1, 1, 1}};
        for (unsigned c = 0; c < sizeof fwd / sizeof fwd[0]; c++) {
            int n = fwd[c][0], H = fwd[c][1], W = fwd[c][2], C = fwd[c][3], F = fwd[c][4];
            int kh = fwd[c][5], kw = fwd[c][6], sh = fwd[c][7], sw = fwd[c][8], pt = fwd[c][9], pl = fwd[c][10];
            int OH = (H + 2 * pt - kh) / sh + 1, OW = (W + 2 * pl - kw) / sw + 1;
            float *x = malloc(sizeof(float) * n * H * W * C), *w = malloc(sizeof(float) * kh * kw * C * F);
            float *y = malloc(sizeof(float) * n * OH * OW * F), *bias = malloc(sizeof(float) * F);
            for (int i = 0; i < n * H * W * C; i++) x[i] = rnd();
            for (int i = 0; i < kh * kw * C * F; i++) w[i] = rnd();
            for (int i = 0; i < F; i++) bias[i] = rnd();
            for (int i = 0; i < n * OH * OW * F; i++) y[i] = NAN;
            /* Odd cases add a bias (then relu in cases 1, 5, 9): the layer's epilogue. */
            int with_bias = c % 2 == 1, relu = c % 4 == 1;
            kiln_conv2d(x, w, y, n, H, W, C, OH, OW, F, kh, kw, sh, sw, pt, pl, with_bias ? bias : NULL, relu);
            for (int b = 0; b < n; b++) for (int oh = 0; oh < OH; oh++) for (int ow = 0; ow < OW; ow++) for (int f = 0; f < F; f++) {
                double want = 0;
                for (int i = 0; i < kh; i++) for (int j = 0; j < kw; j++) {
                    int h = oh * sh + i - pt, xw = ow * sw + j - pl;
                    if (h < 0 || h >= H || xw < 0 || xw >= W) continue;
                    for (int ch = 0; ch < C; ch++)
                        want += (double)x[((b * H + h) * W + xw) * C + ch] * w[((i * kw + j) * C + ch) * F + f];
                }
                if (with_bias) want += bias[f];
                if (relu && want < 0) want = 0;
                double got = y[((b * OH + oh) * OW + ow) * F + f];
                double err = isnan(got) ? 1e30 : fabs(got - want) / (1e-6 * (kh * kw * C + 1));
                if (err > worst) worst = err;
            }
            free(x); free(w); free(y); free(bias);
        }
        /* The filter gradient: n, H, W, C, F, kh, kw, sh, sw, pad_top, pad_left; the last case's
         * images are large enough to be taken one chunk at a time. */
        const int gf[][11] = {{2, 26, 12, 32, 32, 3, 3, 1, 1, 0, 0}, {1, 7, 9, 16, 16, 3, 3, 1, 1, 1, 1},
                              {3, 8, 11, 5, 48, 2, 2, 2, 2, 0, 0}, {1, 9, 13, 3, 32, 3, 5, 2, 1, 1, 2},
                              {9, 5, 5, 40, 16, 1, 1, 1, 1, 0, 0}, {3, 40, 40, 32, 32, 3, 3, 1, 1, 1, 1}};
        for (unsigned c = 0; c < sizeof gf / sizeof gf[0]; c++) {
            int n = gf[c][0], H = gf[c][1], W = gf[c][2], C = gf[c][3], F = gf[c][4];
            int kh = gf[c][5], kw = gf[c][6], sh = gf[c][7], sw = gf[c][8], pt = gf[c][9], pl = gf[c][10];
            int OH = (H + 2 * pt - kh) / sh + 1, OW = (W + 2 * pl - kw) / sw + 1;
            float *x = malloc(sizeof(float) * n * H * W * C), *dy = malloc(sizeof(float) * n * OH * OW * F);
            float *dw = malloc(sizeof(float) * kh * kw * C * F);
            for (int i = 0; i < n * H * W * C; i++) x[i] = rnd();
            for (int i = 0; i < n * OH * OW * F; i++) dy[i] = rnd();
            for (int i = 0; i < kh * kw * C * F; i++) dw[i] = NAN;
            kiln_conv2d_grad_filter(x, dy, dw, n, H, W, C, OH, OW, F, kh, kw, sh, sw, pt, pl);
            for (int i = 0; i < kh; i++) for (int j = 0; j < kw; j++) for (int ch = 0; ch < C; ch++) for (int f = 0; f < F; f++) {
                double want = 0;
                for (int b = 0; b < n; b++) for (int oh = 0; oh < OH; oh++) for (int ow = 0; ow < OW; ow++) {
                    int h = oh * sh + i - pt, xw = ow * sw + j - pl;
                    if (h < 0 || h >= H || xw < 0 || xw >= W) continue;
                    want += (double)x[((b * H + h) * W + xw) * C + ch] * dy[((b * OH + oh) * OW + ow) * F + f];
                }
                double got = dw[((i * kw + j) * C + ch) * F + f];
                double err = isnan(got) ? 1e30 : fabs(got - want) / (1e-6 * (n * OH * OW + 1));
                if (err > worst) worst = err;
            }
            free(x); free(dy); free(dw);
        }
        /* A product with its bias and relu epilogue: one block, split by rows, split by columns. */
        const int prods[][3] = {{30, 20, 48}, {4000, 40, 64}, {64, 40, 3000}};
        for (unsigned c = 0; c < sizeof prods / sizeof prods[0]; c++) {
            int M = prods[c][0], K = prods[c][1], N = prods[c][2];
            float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N), *Cm = malloc(sizeof(float) * M * N);
            float *bias = malloc(sizeof(float) * N);
            for (int i = 0; i < M * K; i++) A[i] = rnd();
            for (int i = 0; i < K * N; i++) B[i] = rnd();
            for (int i = 0; i < N; i++) bias[i] = rnd();
            int relu = c != 1;
            kiln_gemm_bias(0, 0, M, N, K, A, K, B, N, Cm, N, bias, relu);
            for (int m = 0; m < M; m++)
                for (int j = 0; j < N; j++) {
                    double want = bias[j];
                    for (int k = 0; k < K; k++) want += (double)A[m * K + k] * B[k * N + j];
                    if (relu && want < 0) want = 0;
                    double err = fabs(Cm[m * N + j] - want) / (1e-6 * (K + 2));
                    if (err > worst) worst = err;
                }
            free(A); free(B); free(Cm); free(bias);
        }
        printf("%g\n", worst);
        return 0;
    }
    """#

    func testConvolutionsAndTheirGradientsAgainstTheDefinition() throws {
        let dir = try FakeModel.tempDir("kiln-conv")
        try Self.convProgram.write(toFile: dir + "/conv.c", atomically: true, encoding: .utf8)
        let rt = FakeModel.runtimeDir
        try FakeModel.run("cc", ["-O2", "-march=native", "-I", rt, dir + "/conv.c", rt + "/kiln_conv.c", rt + "/kiln_runtime.c",
                                 rt + "/kiln_gemm.c", rt + "/kiln_winograd.c", "-lm", "-lpthread", "-o", dir + "/conv"])
        let out = try FakeModel.run(dir + "/conv", []).trimmingCharacters(in: .whitespacesAndNewlines)
        let worst = try XCTUnwrap(Double(out), "conv test printed \(out)")
        // In units of 1e-6 * (taps * F + 1); an element never written (NaN) counts as 1e30.
        XCTAssertLessThan(worst, 1.0, "largest scaled error \(worst)")
    }
}
