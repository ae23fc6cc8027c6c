// A hand-written stand-in for a compiled model, built into a real libfake.so
// (with the Kiln C runtime) so that the loader and the fit loop can be tested
// without the compiler.

import Foundation
import XCTest
@_exported import KilnTestSupport

enum FakeModel {
    // The model's code is Tests/Fixtures/fake_model.c (Fixtures.fakeModelC).


    /// The glue LibraryGlue.glueC generates for this model, written by hand
    /// (only the parts the loader uses: the desc, the kiln_api table,
    /// kiln_entry and fake_describe). -DFAKE_NO_TRAIN: a predict-only library.
    static let glueC = #"""
    #include "kiln_runtime.h"

    KILN_HIDDEN extern void fake__predict(float *arena, float *state, const void *const *inputs,
                                          void *const *outputs, int64_t n, int64_t steps);
    #ifndef FAKE_NO_TRAIN
    KILN_HIDDEN extern float fake__train(float *arena, float *state, const void *const *inputs,
                                         int64_t n, const kiln_step_info *info);
    KILN_HIDDEN extern float fake__evaluate(float *arena, float *state, const void *const *inputs,
                                            int64_t n, const kiln_step_info *info);
    #endif
    KILN_HIDDEN extern const unsigned char fake__init_state[];

    static const kiln_tensor_desc fake__inputs[1] = {
        { "x", KILN_F32, 2, { -1, 3 } },
    };
    static const kiln_tensor_desc fake__outputs[1] = {
        { "y", KILN_F32, 2, { -1, 2 } },
    };
    static const kiln_tensor_desc fake__targets[1] = {
        { "y", KILN_F32, 2, { -1, 2 } },
    };
    static const kiln_weight_desc fake__weights[2] = {
        { "dense/kernel", 2, { 3, 2 }, 0, 6, 1 },
        { "dense/bias", 1, { 2 }, 24, 2, 1 },
    };

    static const kiln_model_desc fake__desc = {
        .abi_version = KILN_ABI_VERSION,
        .name = "fake",
        .num_inputs = 1,
        .num_outputs = 1,
        .num_weights = 2,
        .inputs = fake__inputs,
        .outputs = fake__outputs,
    #ifndef FAKE_NO_TRAIN
        .targets = fake__targets,
    #else
        .targets = NULL,
    #endif
        .weights = fake__weights,
        .state_bytes = 32,
        .init_state = fake__init_state,
        .init_state_bytes = 32,
        .predict_arena_per_sample = 8,
        .predict_arena_fixed = 0,
        .train_arena_per_sample = 8,
        .train_arena_fixed = 32,
        .predict = fake__predict,
    #ifndef FAKE_NO_TRAIN
        .train = fake__train,
        .evaluate = fake__evaluate,
    #else
        .train = NULL,
        .evaluate = NULL,
    #endif
        .loss = "mean_squared_error",
        .optimizer = "SGD",
    };

    static const kiln_api fake__api = KILN_API_INIT(&fake__desc);

    KILN_EXPORT const kiln_api *kiln_entry(void) { return &fake__api; }
    KILN_EXPORT const struct kiln_api *fake_describe(void) { return &fake__api; }
    """#

    /// Prints `offsetof` of every kiln_abi.h field the Swift loader reads.
    static let offsetsC = #"""
    #include <stdio.h>
    #include <stddef.h>
    #include "kiln_abi.h"
    #define P(t, f) printf(#t "." #f " %zu\n", offsetof(t, f))
    #define S(t) printf(#t ".size %zu\n", sizeof(t))
    int main(void) {
        P(kiln_tensor_desc, name); P(kiln_tensor_desc, dtype); P(kiln_tensor_desc, rank);
        P(kiln_tensor_desc, shape); S(kiln_tensor_desc);
        P(kiln_weight_desc, name); P(kiln_weight_desc, rank); P(kiln_weight_desc, shape);
        P(kiln_weight_desc, offset); P(kiln_weight_desc, count); P(kiln_weight_desc, trainable);
        S(kiln_weight_desc);
        P(kiln_model_desc, abi_version); P(kiln_model_desc, name); P(kiln_model_desc, num_inputs);
        P(kiln_model_desc, num_outputs); P(kiln_model_desc, num_weights); P(kiln_model_desc, inputs);
        P(kiln_model_desc, outputs); P(kiln_model_desc, targets); P(kiln_model_desc, weights);
        P(kiln_model_desc, state_bytes); P(kiln_model_desc, init_state); P(kiln_model_desc, predict);
        P(kiln_model_desc, train); P(kiln_model_desc, evaluate); P(kiln_model_desc, loss);
        P(kiln_model_desc, optimizer); P(kiln_model_desc, init_state_bytes); P(kiln_model_desc, free_steps);
        P(kiln_model_desc, predict_arena_per_row_step); P(kiln_model_desc, predict_arena_per_step);
        P(kiln_model_desc, train_arena_per_row_step); P(kiln_model_desc, train_arena_per_step); S(kiln_model_desc);
        P(kiln_api, abi_version); P(kiln_api, struct_size); P(kiln_api, desc); P(kiln_api, create);
        P(kiln_api, destroy); P(kiln_api, predict); P(kiln_api, reserve); P(kiln_api, train_step);
        P(kiln_api, evaluate); P(kiln_api, num_weights); P(kiln_api, get_weight); P(kiln_api, set_weight);
        P(kiln_api, save_weights); P(kiln_api, load_weights); P(kiln_api, set_seed);
        P(kiln_api, iterations); P(kiln_api, last_error); P(kiln_api, last_metrics); P(kiln_api, predict_steps);
        P(kiln_api, train_step_steps); P(kiln_api, evaluate_steps); P(kiln_api, set_num_threads); S(kiln_api);
        return 0;
    }
    """#

    /// Initial weights, as in Tests/Fixtures/fake_model.c.
    static let W: [Float] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    static let b: [Float] = [0.01, -0.02]

    /// The Runtime/ folder of this source tree.
    static var runtimeDir: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Runtime").path
    }

    nonisolated(unsafe) private static var built: [Bool: String] = [:]
    private static let lock = NSLock()

    /// Builds libfake.so (once per process and variant) and returns its path.
    static func library(training: Bool = true) throws -> String {
        lock.lock()
        defer { lock.unlock() }
        if let p = built[training] { return p }
        let dir = try tempDir("kiln-fake")
        try glueC.write(toFile: dir + "/fake_glue.c", atomically: true, encoding: .utf8)
        let lib = dir + "/libfake.so"
        var args = ["-shared", "-fPIC", "-O2", "-fvisibility=hidden", "-I", runtimeDir,
                    Fixtures.fakeModelC, dir + "/fake_glue.c", runtimeDir + "/kiln_runtime.c", runtimeDir + "/kiln_gemm.c",
                    "-lopenblas", "-lm", "-Wl,-Bsymbolic", "-o", lib]
        if !training { args.insert("-DFAKE_NO_TRAIN", at: 0) }
        try run("cc", args)
        built[training] = lib
        return lib
    }

    static func tempDir(_ prefix: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Runs a program found on PATH; returns stdout; fails with its stderr.
    @discardableResult
    static func run(_ tool: String, _ args: [String]) throws -> String {
        let r = try runProcess(tool, args)
        guard r.status == 0 else {
            throw NSError(domain: "fixture", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: "\(tool) failed: " + r.stderr])
        }
        return r.stdout
    }
}
