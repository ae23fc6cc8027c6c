// LibraryGlue + LibraryLinker: a hand-written model object becomes
// libNAME.so + NAME.h that a C program compiles against and runs.

import Foundation
import XCTest
import KilnLLVM
import KilnRuntime

final class LibraryGlueTests: XCTestCase {
    /// Stand-in for the object `kiln compile` emits (the same model as
    /// Tests/KilnRuntimeTests/FakeModelFixture.swift): y = x . W + b, x (-1, 3),
    /// W (3, 2) at byte 0, b (2,) at byte 24; MSE loss, SGD lr 0.1.
    /// -DFAKE_NAME=other renames the symbols; -DFAKE_NO_TRAIN leaves out training.
    static let modelC = #"""
    #include "kiln_abi.h"
    #ifndef FAKE_NAME
    #define FAKE_NAME fake
    #endif
    #define CAT2(a, b) a##b
    #define CAT(a, b) CAT2(a, b)
    #define SYM(s) CAT(FAKE_NAME, s)

    const float SYM(__init_state)[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.01f, -0.02f};

    void SYM(__predict)(float *arena, float *state, const void *const *inputs, void *const *outputs, int64_t n, int64_t steps) {
        (void)steps;
        const float *x = inputs[0], *W = state, *b = state + 6;
        float *y = outputs[0];
        (void)arena;
        for (int64_t i = 0; i < n; i++)
            for (int j = 0; j < 2; j++) {
                float s = b[j];
                for (int k = 0; k < 3; k++) s += x[i * 3 + k] * W[k * 2 + j];
                y[i * 2 + j] = s;
            }
    }

    #ifndef FAKE_NO_TRAIN
    static float step(float *arena, float *state, const void *const *inputs, int64_t n, int update) {
        const float *x = inputs[0], *t = inputs[1];
        float *W = state, *b = state + 6, *dy = arena;
        double loss = 0;
        for (int64_t i = 0; i < n; i++)
            for (int j = 0; j < 2; j++) {
                float y = b[j];
                for (int k = 0; k < 3; k++) y += x[i * 3 + k] * W[k * 2 + j];
                float d = y - t[i * 2 + j];
                loss += (double)d * d;
                dy[i * 2 + j] = 2.0f * d / (float)(2 * n);
            }
        if (update)
            for (int64_t i = 0; i < n; i++)
                for (int j = 0; j < 2; j++) {
                    for (int k = 0; k < 3; k++) W[k * 2 + j] -= 0.1f * x[i * 3 + k] * dy[i * 2 + j];
                    b[j] -= 0.1f * dy[i * 2 + j];
                }
        return (float)(loss / (double)(2 * n));
    }
    float SYM(__train)(float *arena, float *state, const void *const *inputs, int64_t n, const kiln_step_info *info) {
        (void)info;
        return step(arena, state, inputs, n, 1);
    }
    float SYM(__evaluate)(float *arena, float *state, const void *const *inputs, int64_t n, const kiln_step_info *info) {
        (void)info;
        return step(arena, state, inputs, n, 0);
    }
    #endif
    """#

    static func model(_ name: String = "fake", training: Bool = true) -> GlueModel {
        GlueModel(name: name,
                  inputs: [GlueTensor(name: "x", dtype: "f32", shape: [-1, 3])],
                  outputs: [GlueTensor(name: "y", dtype: "f32", shape: [-1, 2])],
                  targets: training ? [GlueTensor(name: "y", dtype: "f32", shape: [-1, 2])] : [],
                  weights: [GlueWeight(name: "dense/kernel", shape: [3, 2], offset: 0, trainable: true),
                            GlueWeight(name: "dense/bias", shape: [2], offset: 24, trainable: true)],
                  stateBytes: 32, predictArenaPerSample: 0, predictArenaFixed: 0,
                  trainArenaPerSample: 8, trainArenaFixed: 0,
                  hasTraining: training, loss: training ? "mean_squared_error" : "", optimizer: training ? "SGD" : "")
    }

    var work = ""

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory
            .appendingPathComponent("kiln-glue-\(getpid())-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: work)
    }

    @discardableResult
    func sh(_ tool: String, _ args: [String]) throws -> String {
        let r = try runProcess(tool, args)
        let text = r.stdout + r.stderr
        if r.status != 0 { XCTFail("\(tool) \(args.joined(separator: " ")) failed:\n\(text)") }
        return text
    }

    /// Compiles the fake model to an object file, as `kiln compile` would emit it.
    func object(_ name: String = "fake", training: Bool = true) throws -> String {
        let src = work + "/\(name)_model.c", obj = work + "/\(name).o"
        try Self.modelC.write(toFile: src, atomically: true, encoding: .utf8)
        var args = ["-c", "-O2", "-fPIC", "-I", try LibraryLinker.runtimeDirectory(), "-DFAKE_NAME=\(name)", src, "-o", obj]
        if !training { args.insert("-DFAKE_NO_TRAIN", at: 0) }
        try sh("cc", args)
        return obj
    }

    func link(_ name: String = "fake", training: Bool = true, outDir: String) throws {
        try LibraryLinker.link(objectPath: try object(name, training: training), glue: Self.model(name, training: training),
                               runtimeDir: try LibraryLinker.runtimeDirectory(), outDir: outDir)
    }

    // MARK: - Text

    func testCIdentifier() {
        XCTAssertEqual(LibraryGlue.cIdentifier("dense_1/kernel"), "dense_1_kernel")
        XCTAssertEqual(LibraryGlue.cIdentifier("mnist-cnn"), "mnist_cnn")
        XCTAssertEqual(LibraryGlue.cIdentifier("1st"), "_1st")
        XCTAssertEqual(LibraryGlue.cIdentifier(""), "_")
        XCTAssertEqual(LibraryGlue.cIdentifier("int"), "int_")
        XCTAssertEqual(LibraryGlue.cIdentifier("héllo wörld"), "h_llo_w_rld")
    }

    func testHeaderDocumentsTheModel() {
        let h = LibraryGlue.header(Self.model())
        XCTAssertTrue(h.hasPrefix("/* fake.h: generated by kiln compile; do not edit.\n"))
        for line in [" *   0   x  f32  (-1, 3)              parameter in_x",
                     " *   0   y  f32  (-1, 2)              parameter out_y",
                     " * Loss: mean_squared_error. Optimizer: SGD.",
                     " *   0   dense/kernel  (3, 2)           6        trainable",
                     " *   1   dense/bias    (2,)             2        trainable",
                     "#ifndef KILN_fake_H", "#define fake_NUM_WEIGHTS 2", "#include <stdint.h>", "extern \"C\" {",
                     "typedef struct fake_model fake_model;",
                     "fake_model *fake_create(void);",
                     "int fake_predict(fake_model *m, const float *in_x, float *out_y, int64_t n);",
                     "int fake_train_step(fake_model *m, const float *in_x, const float *target_y, int64_t n, float *loss);",
                     "int fake_get_weight(fake_model *m, int index, float *dst, int64_t count);",
                     "const char *fake_last_error(const fake_model *m);"] {
            XCTAssertTrue(h.contains(line + "\n"), "missing: \(line)")
        }
        let none = LibraryGlue.header(Self.model(training: false))
        XCTAssertTrue(none.contains("compiled without a training step"))
    }

    func testParameterNamesAreTypedAndUnique() throws {
        let m = GlueModel(name: "two", inputs: [GlueTensor(name: "a-b", dtype: "i32", shape: [-1, 6]),
                                                GlueTensor(name: "a_b", dtype: "f32", shape: [-1, -1, 4])],
                          outputs: [GlueTensor(name: "out */", dtype: "f32", shape: [-1])],
                          targets: [GlueTensor(name: "out */", dtype: "i32", shape: [-1])],
                          weights: [], stateBytes: 0, hasTraining: true, loss: "sparse_categorical_crossentropy",
                          optimizer: "Adam")
        let h = LibraryGlue.header(m)
        XCTAssertTrue(h.contains("int two_predict(two_model *m, const int32_t *in_a_b, const float *in_a_b_2, float *out_out___, int64_t n);"), h)
        XCTAssertTrue(h.contains("const int32_t *target_out___"))
        XCTAssertFalse(h.dropFirst(2).dropLast(10).contains("out */"), "comment text is escaped")
        // The header and glue compile (C and C++), strict.
        try h.write(toFile: work + "/two.h", atomically: true, encoding: .utf8)
        try LibraryGlue.glueC(m).write(toFile: work + "/two_glue.c", atomically: true, encoding: .utf8)
        let rt = try LibraryLinker.runtimeDirectory()
        try sh("cc", ["-fsyntax-only", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", rt, "-I", work, work + "/two_glue.c"])
        try "#include \"two.h\"\nint main() { return two_create() == 0; }\n".write(toFile: work + "/app.cpp", atomically: true, encoding: .utf8)
        try sh("c++", ["-fsyntax-only", "-Wall", "-Werror", "-I", work, work + "/app.cpp"])
    }

    func testValidateRefusesBadModels() {
        var m = Self.model()
        m.name = "my-model"
        XCTAssertThrowsError(try LibraryGlue.validate(m)) { XCTAssertEqual("\($0)", "model name 'my-model' is not a C identifier; use 'my_model'.") }
        m = Self.model()
        m.inputs[0].dtype = "f64"
        XCTAssertThrowsError(try LibraryGlue.validate(m)) { XCTAssertTrue("\($0)".contains("only f32 and i32")) }
        m = Self.model()
        m.weights[1].offset = 28
        XCTAssertThrowsError(try LibraryGlue.validate(m)) { XCTAssertTrue("\($0)".contains("outside the 32-byte state")) }
        m = Self.model()
        m.targets = []
        XCTAssertThrowsError(try LibraryGlue.validate(m)) { XCTAssertTrue("\($0)".contains("0 targets for 1 outputs")) }
    }

    // MARK: - Linking

    func testLinkedLibraryWorksFromC() throws {
        let out = work + "/out"
        try link(outDir: out)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), ["fake.h", "libfake.so"])

        let exported = try sh("nm", ["-D", "--defined-only", out + "/libfake.so"])
        for sym in ["kiln_entry", "fake_describe", "fake_create", "fake_predict", "fake_train_step", "fake_last_error"] {
            XCTAssertTrue(exported.contains(" \(sym)\n"), "\(sym) not exported")
        }
        for sym in ["kiln_create", "kiln_predict", "fake__predict", "fake__init_state"] {
            XCTAssertFalse(exported.contains(" \(sym)\n"), "\(sym) exported")
        }

        let app = #"""
        #include <stdio.h>
        #include "fake.h"
        int main(int argc, char **argv) {
            (void)argc;
            fake_model *m = fake_create(), *m2 = fake_create();
            float x[6] = {0, 0, 1, 1, 2, 3}, y[4], t[4] = {1, 0, 0, 1}, loss = 0, w[6];
            if (!m || !m2 || fake_predict(m, x, y, 2) != 0) return 1;
            printf("predict %.4f %.4f %.4f %.4f\n", y[0], y[1], y[2], y[3]);
            int rc = fake_train_step(m, x, t, 2, &loss);
            printf("train %d %.5f %lld\n", rc, loss, (long long)fake_iterations(m));
            rc = fake_get_weight(m, 1, w, 2);
            printf("weights %lld %d %.4f\n", (long long)fake_num_weights(m), rc, w[0]);
            rc = fake_get_weight(m, 5, w, 6);
            printf("bad %d %s\n", rc, fake_last_error(m));
            printf("save %d\n", fake_save_weights(m, argv[1]));
            rc = fake_load_weights(m2, argv[1]);
            printf("load %d %lld\n", rc, (long long)fake_iterations(m2));
            printf("describe %d\n", fake_describe() != 0);
            fake_destroy(m);
            fake_destroy(m2);
            return 0;
        }
        """#
        try app.write(toFile: work + "/app.c", atomically: true, encoding: .utf8)
        try sh("cc", ["-Wall", "-Werror", work + "/app.c", "-I", out, "-L", out, "-lfake", "-Wl,-rpath," + out, "-o", work + "/app"])
        // By hand: x0 = (0, 0, 1) -> (0.51, 0.58); x1 = (1, 2, 3) -> (2.21, 2.78);
        // loss = (0.49^2 + 0.58^2 + 2.21^2 + 1.78^2) / 4 = 2.15725.
        XCTAssertEqual(try sh(work + "/app", [work + "/state.kiln"]), """
            predict 0.5100 0.5800 2.2100 2.7800
            train 0 2.15725 1
            weights 2 0 -0.0760
            bad -1 weight index 5 is out of range; model 'fake' has 2 weights.
            save 0
            load 0 1
            describe 1

            """)

        // The same library through the generic loader.
        let lib = try CompiledLibrary(path: out + "/libfake.so")
        XCTAssertEqual(lib.name, "fake")
        XCTAssertEqual(lib.weights.map(\.name), ["dense/kernel", "dense/bias"])
        let p = try lib.predict([HostTensor(shape: [2, 3], floats: [0, 0, 1, 1, 2, 3])])[0].floats
        XCTAssertEqual(p[0], 0.51, accuracy: 1e-6)
        XCTAssertEqual(p[3], 2.78, accuracy: 1e-6)
        try lib.loadWeights(from: work + "/state.kiln")
        XCTAssertEqual(lib.iterations, 1)
    }

    func testTwoModelsLinkIntoOneProgram() throws {
        let out = work + "/out"
        try link("fake", outDir: out)
        try link("other", outDir: out)
        let app = #"""
        #include <stdio.h>
        #include "fake.h"
        #include "other.h"
        int main(void) {
            fake_model *a = fake_create();
            other_model *b = other_create();
            float x[3] = {1, 2, 3}, t[2] = {0, 0}, ya[2], yb[2], loss;
            other_train_step(b, x, t, 1, &loss);
            fake_predict(a, x, ya, 1);
            other_predict(b, x, yb, 1);
            printf("%.4f %.4f %lld %lld %d\n", ya[0], yb[0], (long long)fake_iterations(a),
                   (long long)other_iterations(b), (const void *)fake_describe() != (const void *)other_describe());
            fake_destroy(a);
            other_destroy(b);
            return 0;
        }
        """#
        try app.write(toFile: work + "/two.c", atomically: true, encoding: .utf8)
        try sh("cc", ["-Wall", "-Werror", work + "/two.c", "-I", out, "-L", out, "-lfake", "-lother", "-Wl,-rpath," + out,
                      "-o", work + "/two"])
        let fields = try sh(work + "/two", []).split(separator: " ")
        XCTAssertEqual(fields.count, 5)
        XCTAssertEqual(fields[0], "2.2100")
        XCTAssertNotEqual(fields[1], "2.2100", "training b moved b only")
        XCTAssertEqual(fields[2...].joined(separator: " "), "0 1 1\n")
    }

    func testFailedLinkKeepsTheOldLibraryAndReportsTheCompiler() throws {
        let out = work + "/out"
        try link(outDir: out)
        let before = try Data(contentsOf: URL(fileURLWithPath: out + "/libfake.so"))
        // An object without NAME__train although the glue expects training.
        let obj = try object(training: false)
        XCTAssertThrowsError(try LibraryLinker.link(objectPath: obj, glue: Self.model(), runtimeDir: LibraryLinker.runtimeDirectory(),
                                                    outDir: out)) { e in
            let text = "\(e)"
            XCTAssertTrue(text.hasPrefix("linking libfake.so failed ("), text)
            XCTAssertTrue(text.contains("fake__train"), text)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out + "/libfake.so")), before)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: out).sorted(), ["fake.h", "libfake.so"])
        XCTAssertThrowsError(try LibraryLinker.link(objectPath: work + "/none.o", glue: Self.model(),
                                                    runtimeDir: LibraryLinker.runtimeDirectory(), outDir: out)) {
            XCTAssertEqual("\($0)", "cannot link libfake.so: the object file '\(self.work)/none.o' does not exist.")
        }
    }

    func testPredictOnlyLibrary() throws {
        let out = work + "/out"
        try link(training: false, outDir: out)
        let lib = try CompiledLibrary(path: out + "/libfake.so")
        XCTAssertFalse(lib.canTrain)
        XCTAssertEqual(try lib.predict([HostTensor(shape: [1, 3], floats: [0, 0, 1])])[0].floats[0], 0.51, accuracy: 1e-6)
        XCTAssertThrowsError(try lib.trainStep(x: [HostTensor(shape: [1, 3], floats: [0, 0, 1])], y: []))
        XCTAssertTrue(try String(contentsOfFile: out + "/fake.h", encoding: .utf8).contains("compiled without a training step"))
    }

    func testRuntimeDirectory() throws {
        let dir = try LibraryLinker.runtimeDirectory()
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/kiln_runtime.c"))
        setenv("KILN_RUNTIME_DIR", work, 1)
        defer { unsetenv("KILN_RUNTIME_DIR") }
        XCTAssertThrowsError(try LibraryLinker.runtimeDirectory()) {
            XCTAssertTrue("\($0)".hasPrefix("KILN_RUNTIME_DIR is '\(self.work)'"))
        }
        setenv("KILN_RUNTIME_DIR", dir, 1)
        XCTAssertEqual(try LibraryLinker.runtimeDirectory(), dir)
    }
}
