// The runtime's matrix products (Runtime/kiln_gemm.c) against a naive double
// loop, for every transpose combination, beta 0 and 1, leading dimensions
// wider than the matrices, and shapes that exercise every block and tail.

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
                                 {64, 288, 32}, {2, 300, 3}, {31, 17, 129}, {5, 1000, 7}, {40, 130, 16}};
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
}
