/* A hand-written stand-in for the object `kiln compile` emits, written after
 * Runtime/kiln_abi.h, shared by the tests of the glue and linker
 * (Tests/KilnLLVMTests/LibraryGlueTests.swift) and of the loader and fit loop
 * (Tests/KilnRuntimeTests/FakeModelFixture.swift).
 *
 * Model FAKE_NAME (default `fake`): input x (-1, 3) f32, output
 * y (-1, 2) = x . W + b; W (3, 2) at state byte 0, b (2,) at byte 24.
 * Training: mean squared error, plain SGD, learning rate 0.1. Predict arena:
 * 8 bytes per sample (x . W); train arena: 8 bytes per sample (dL/dy) + 32
 * fixed (dW, db). -DFAKE_NO_TRAIN leaves training out.
 */
#include "kiln_abi.h"
#ifndef FAKE_NAME
#define FAKE_NAME fake
#endif
#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define SYM(s) CAT(FAKE_NAME, s)

/* W = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], b = [0.01, -0.02] */
const float SYM(__init_state)[8] __attribute__((aligned(64))) =
    {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.01f, -0.02f};

/* Probes the tests read through dlsym. */
__attribute__((visibility("default"))) int64_t SYM(_probe_max_predict_rows) = 0;
__attribute__((visibility("default"))) int64_t SYM(_probe_last_iteration) = -1;
__attribute__((visibility("default"))) uint64_t SYM(_probe_last_seed) = 0;

void SYM(__predict)(float *arena, float *state, const void *const *inputs, void *const *outputs, int64_t n, int64_t steps) {
    (void)steps;
    const float *x = inputs[0], *W = state, *b = state + 6;
    float *y = outputs[0];
    if (n > SYM(_probe_max_predict_rows)) SYM(_probe_max_predict_rows) = n;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < 2; j++) {
            float s = 0;
            for (int k = 0; k < 3; k++) s += x[i * 3 + k] * W[k * 2 + j];
            arena[i * 2 + j] = s;
        }
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < 2; j++) y[i * 2 + j] = arena[i * 2 + j] + b[j];
}

static float step(float *arena, float *state, const void *const *inputs, int64_t n,
                  const kiln_step_info *info, int update) {
    const float *x = inputs[0], *t = inputs[1];
    float *W = state, *b = state + 6;
    float *dy = arena, *dW = arena + 2 * n, *db = dW + 6;
    SYM(_probe_last_iteration) = info->iteration;
    SYM(_probe_last_seed) = info->seed;
    double loss = 0;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < 2; j++) {
            float y = b[j];
            for (int k = 0; k < 3; k++) y += x[i * 3 + k] * W[k * 2 + j];
            float d = y - t[i * 2 + j];
            loss += (double)d * d;
            dy[i * 2 + j] = 2.0f * d / (float)(2 * n);
        }
    if (update) {
        for (int k = 0; k < 6; k++) dW[k] = 0;
        db[0] = db[1] = 0;
        for (int64_t i = 0; i < n; i++)
            for (int j = 0; j < 2; j++) {
                for (int k = 0; k < 3; k++) dW[k * 2 + j] += x[i * 3 + k] * dy[i * 2 + j];
                db[j] += dy[i * 2 + j];
            }
        for (int k = 0; k < 6; k++) W[k] -= 0.1f * dW[k];
        for (int j = 0; j < 2; j++) b[j] -= 0.1f * db[j];
    }
    return (float)(loss / (double)(2 * n));
}

#ifndef FAKE_NO_TRAIN
float SYM(__train)(float *arena, float *state, const void *const *inputs, int64_t n, const kiln_step_info *info) {
    return step(arena, state, inputs, n, info, 1);
}
float SYM(__evaluate)(float *arena, float *state, const void *const *inputs, int64_t n, const kiln_step_info *info) {
    return step(arena, state, inputs, n, info, 0);
}
#endif
