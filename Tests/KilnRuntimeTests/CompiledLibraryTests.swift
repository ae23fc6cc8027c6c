// The loader (CompiledLibrary) and the C runtime, on the hand-written fake
// model of FakeModelFixture.swift.

import Foundation
import XCTest
import KilnSupport
@testable import KilnRuntime

final class CompiledLibraryTests: XCTestCase {
    func load(training: Bool = true) throws -> CompiledLibrary {
        try CompiledLibrary(path: FakeModel.library(training: training))
    }

    /// Rows of x: row i = (i, -i/2, 1 + i/10) scaled down.
    func xs(_ n: Int) -> HostTensor {
        HostTensor(shape: [n, 3], floats: (0..<n).flatMap { i -> [Float] in
            let f = Float(i) * 0.1
            return [f, -f / 2, 1 + f / 10]
        })
    }

    /// x . W + b in Double.
    func reference(_ x: [Float], W: [Float], b: [Float]) -> [Double] {
        var out: [Double] = []
        for r in stride(from: 0, to: x.count, by: 3) {
            for j in 0..<2 {
                var s = Double(b[j])
                for k in 0..<3 { s += Double(x[r + k]) * Double(W[k * 2 + j]) }
                out.append(s)
            }
        }
        return out
    }

    /// A probe variable of the fake model (the library stays loaded while a
    /// CompiledLibrary of it lives).
    func probeAddress(_ name: String) throws -> UnsafeMutableRawPointer {
        let h = try XCTUnwrap(dlopen(FakeModel.library(), RTLD_NOW | RTLD_LOCAL))
        defer { dlclose(h) }
        return try XCTUnwrap(dlsym(h, name))
    }

    func probe<T>(_ name: String, _: T.Type) throws -> T {
        try probeAddress(name).load(as: T.self)
    }

    func message(_ body: () throws -> Void) -> String {
        do { try body() } catch { return "\(error)" }
        return "(no error)"
    }

    // MARK: - ABI

    func testSwiftOffsetsMatchTheCHeader() throws {
        let dir = try FakeModel.tempDir("kiln-abi")
        try FakeModel.offsetsC.write(toFile: dir + "/offsets.c", atomically: true, encoding: .utf8)
        try FakeModel.run("cc", ["-I", FakeModel.runtimeDir, dir + "/offsets.c", "-o", dir + "/offsets"])
        var c: [String: Int] = [:]
        for line in try FakeModel.run(dir + "/offsets", []).split(separator: "\n") {
            let parts = line.split(separator: " ")
            c[String(parts[0])] = Int(parts[1])
        }
        typealias T = ABI.TensorDesc
        typealias W = ABI.WeightDesc
        typealias M = ABI.ModelDesc
        typealias A = ABI.API
        let swift: [String: Int] = [
            "kiln_tensor_desc.name": T.name, "kiln_tensor_desc.dtype": T.dtype, "kiln_tensor_desc.rank": T.rank,
            "kiln_tensor_desc.shape": T.shape, "kiln_tensor_desc.size": T.size,
            "kiln_weight_desc.name": W.name, "kiln_weight_desc.rank": W.rank, "kiln_weight_desc.shape": W.shape,
            "kiln_weight_desc.offset": W.offset, "kiln_weight_desc.count": W.count,
            "kiln_weight_desc.trainable": W.trainable, "kiln_weight_desc.size": W.size,
            "kiln_model_desc.abi_version": M.abiVersion, "kiln_model_desc.name": M.name,
            "kiln_model_desc.num_inputs": M.numInputs, "kiln_model_desc.num_outputs": M.numOutputs,
            "kiln_model_desc.num_weights": M.numWeights, "kiln_model_desc.inputs": M.inputs,
            "kiln_model_desc.outputs": M.outputs, "kiln_model_desc.targets": M.targets,
            "kiln_model_desc.weights": M.weights, "kiln_model_desc.state_bytes": M.stateBytes,
            "kiln_model_desc.init_state": M.initState, "kiln_model_desc.predict": M.predict,
            "kiln_model_desc.train": M.train, "kiln_model_desc.evaluate": M.evaluate,
            "kiln_model_desc.loss": M.loss, "kiln_model_desc.optimizer": M.optimizer, "kiln_model_desc.size": M.size,
            "kiln_model_desc.init_state_bytes": M.initStateBytes, "kiln_model_desc.free_steps": M.freeSteps,
            "kiln_model_desc.predict_arena_per_row_step": M.predictArenaPerRowStep, "kiln_model_desc.predict_arena_per_step": M.predictArenaPerStep,
            "kiln_model_desc.train_arena_per_row_step": M.trainArenaPerRowStep, "kiln_model_desc.train_arena_per_step": M.trainArenaPerStep,
            "kiln_api.last_metrics": A.lastMetrics, "kiln_api.predict_steps": A.predictSteps,
            "kiln_api.train_step_steps": A.trainStepSteps, "kiln_api.evaluate_steps": A.evaluateSteps,
            "kiln_api.abi_version": A.abiVersion, "kiln_api.struct_size": A.structSize, "kiln_api.desc": A.desc,
            "kiln_api.create": A.create, "kiln_api.destroy": A.destroy, "kiln_api.predict": A.predict,
            "kiln_api.reserve": A.reserve, "kiln_api.train_step": A.trainStep, "kiln_api.evaluate": A.evaluate,
            "kiln_api.num_weights": A.numWeights, "kiln_api.get_weight": A.getWeight,
            "kiln_api.set_weight": A.setWeight, "kiln_api.save_weights": A.saveWeights,
            "kiln_api.load_weights": A.loadWeights, "kiln_api.set_seed": A.setSeed,
            "kiln_api.iterations": A.iterations, "kiln_api.last_error": A.lastError,
            "kiln_api.set_num_threads": A.setNumThreads, "kiln_api.size": A.size,
        ]
        XCTAssertEqual(c, swift)
    }

    // MARK: - Threads

    /// The runtime's pool, loop chunks and split matrix products, from a C program that
    /// includes kiln_runtime.c (so it reaches the static parts): items reach the worker,
    /// a parallel loop covers every index once, and kiln_gemm gives bit-identical results
    /// with 1, 2 and 3 threads (split by rows, by columns, and unsplit), close to a naive product.
    func testThreadPoolAndSplitProducts() throws {
        let dir = try FakeModel.tempDir("kiln-pool")
        try Self.poolC.write(toFile: dir + "/pool.c", atomically: true, encoding: .utf8)
        try FakeModel.run("cc", ["-O1", "-march=native", "-I", FakeModel.runtimeDir, dir + "/pool.c", FakeModel.runtimeDir + "/kiln_gemm.c",
                                 "-o", dir + "/pool", "-lopenblas", "-lm"])
        let out = try FakeModel.run(dir + "/pool", [])
        XCTAssertEqual(out, """
            items on the worker: yes
            loop covers every index once: yes
            gemm 3000x32x27 nn: identical yes, close yes
            gemm 27x32x3000 tn: identical yes, close yes
            gemm 3000x27x32 nt: identical yes, close yes
            gemm 48x700x300 nn: identical yes, close yes
            gemm 300x64x700 tt: identical yes, close yes
            gemm 15x512x128 nn: identical yes, close yes

            """)
    }

    static let poolC = #"""
    #include "kiln_runtime.c"
    #include <math.h>

    static pthread_t ran[512];
    static void item(void *ctx, int64_t i) {
        (void)ctx;
        ran[i] = pthread_self();
        volatile double x = 0;
        for (int k = 0; k < 20000; k++) x += k;
    }
    static int hits[100000];
    static void range(void *ctx, int64_t lo, int64_t hi) {
        (void)ctx;
        for (int64_t i = lo; i < hi; i++) __atomic_fetch_add(&hits[i], 1, __ATOMIC_RELAXED);
    }
    static float uniform(uint64_t *s) {
        *s = *s * 6364136223846793005ull + 1442695040888963407ull;
        return (float)((*s >> 40) / 16777216.0) * 2 - 1;
    }
    static void gemm_case(int ta, int tb, int m, int n, int k) {
        uint64_t seed = (uint64_t)(m * 131 + n * 7 + k);
        float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
        float *c[3] = { malloc(sizeof(float) * m * n), malloc(sizeof(float) * m * n), malloc(sizeof(float) * m * n) };
        for (int i = 0; i < m * k; i++) a[i] = uniform(&seed);
        for (int i = 0; i < k * n; i++) b[i] = uniform(&seed);
        for (int t = 0; t < 3; t++) {
            tls_threads = t + 1;
            kiln_gemm(ta, tb, m, n, k, a, ta ? m : k, b, tb ? k : n, 0.0f, c[t], n);
        }
        int same = !memcmp(c[0], c[1], sizeof(float) * m * n) && !memcmp(c[0], c[2], sizeof(float) * m * n);
        int close = 1;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int l = 0; l < k; l++)
                    s += (double)(ta ? a[l * m + i] : a[i * k + l]) * (tb ? b[j * k + l] : b[l * n + j]);
                if (fabs(s - c[0][i * n + j]) > 1e-4 * (1 + fabs(s))) close = 0;
            }
        printf("gemm %dx%dx%d %c%c: identical %s, close %s\n", m, n, k, ta ? 't' : 'n', tb ? 't' : 'n',
               same ? "yes" : "no", close ? "yes" : "no");
        free(a); free(b); free(c[0]); free(c[1]); free(c[2]);
    }
    int main(void) {
        if (openblas_set_num_threads) openblas_set_num_threads(1);
        pool_grow(2);
        int other = 0;
        for (int attempt = 0; attempt < 20 && !other; attempt++) {
            tls_threads = 2;
            kiln_parallel_for(512, item, NULL);
            for (int i = 0; i < 512; i++) other += !pthread_equal(ran[i], pthread_self());
        }
        printf("items on the worker: %s\n", other ? "yes" : "no");
        tls_threads = 3;
        kiln_parallel_loop(100000, (int64_t)1 << 22, range, NULL);
        int once = 1;
        for (int i = 0; i < 100000; i++) once &= hits[i] == 1;
        printf("loop covers every index once: %s\n", once ? "yes" : "no");
        gemm_case(0, 0, 3000, 32, 27);
        gemm_case(1, 0, 27, 32, 3000);
        gemm_case(0, 1, 3000, 27, 32);
        gemm_case(0, 0, 48, 700, 300);
        gemm_case(1, 1, 300, 64, 700);
        gemm_case(0, 0, 15, 512, 128);
        return 0;
    }
    """#

    // MARK: - Loading

    func testDescribesTheModel() throws {
        let lib = try load()
        XCTAssertEqual(lib.name, "fake")
        XCTAssertEqual(lib.inputs, [TensorSpec(name: "x", dtype: .float32, shape: [-1, 3])])
        XCTAssertEqual(lib.outputs, [TensorSpec(name: "y", dtype: .float32, shape: [-1, 2])])
        XCTAssertEqual(lib.targets, lib.outputs)
        XCTAssertEqual(lib.weights, [WeightSpec(name: "dense/kernel", shape: [3, 2], trainable: true),
                                     WeightSpec(name: "dense/bias", shape: [2], trainable: true)])
        XCTAssertEqual(lib.loss, "mean_squared_error")
        XCTAssertEqual(lib.optimizer, "SGD")
        XCTAssertTrue(lib.canTrain)
        XCTAssertEqual(lib.iterations, 0)
        XCTAssertEqual(lib.getWeights(), [HostTensor(shape: [3, 2], floats: FakeModel.W),
                                          HostTensor(shape: [2], floats: FakeModel.b)])
    }

    func testLoadErrorsNameTheFile() throws {
        XCTAssertEqual(message { _ = try CompiledLibrary(path: "/nonexistent/libx.so") },
                       "cannot load compiled library '/nonexistent/libx.so': no such file.")
        let dir = try FakeModel.tempDir("kiln-bad")
        try "not a library".write(toFile: dir + "/libbad.so", atomically: true, encoding: .utf8)
        XCTAssertTrue(message { _ = try CompiledLibrary(path: dir + "/libbad.so") }
            .hasPrefix("cannot load compiled library '\(dir)/libbad.so': "))
        // A real shared library that is not a Kiln model.
        try "int f(void) { return 1; }".write(toFile: dir + "/other.c", atomically: true, encoding: .utf8)
        try FakeModel.run("cc", ["-shared", "-fPIC", dir + "/other.c", "-o", dir + "/libother.so"])
        XCTAssertEqual(message { _ = try CompiledLibrary(path: dir + "/libother.so") },
                       "'\(dir)/libother.so' is not a Kiln model library: it has no kiln_entry function.")
    }

    // MARK: - Predict

    func testPredictMatchesHandComputation() throws {
        let lib = try load()
        let x = xs(5)
        let out = try lib.predict([x])
        XCTAssertEqual(out.count, 1)
        XCTAssertEqual(out[0].shape, [5, 2])
        assertClose(out[0].floats, reference(x.floats, W: FakeModel.W, b: FakeModel.b), "predict")
        // Hand-checked first row: x = (0, 0, 1) -> (0.5 + 0.01, 0.6 - 0.02).
        XCTAssertEqual(out[0].floats[0], 0.51, accuracy: 1e-6)
        XCTAssertEqual(out[0].floats[1], 0.58, accuracy: 1e-6)
        XCTAssertEqual(try lib.predict([HostTensor(shape: [0, 3], floats: [])])[0].shape, [0, 2])
    }

    func testPredictRunsInChunks() throws {
        let lib = try load()
        let x = xs(1000)
        let want = reference(x.floats, W: FakeModel.W, b: FakeModel.b)
        for batch in [7, 256, 5000] {
            assertClose(try lib.predict([x], batchSize: batch)[0].floats, want, "predict in batches of \(batch)")
        }
        XCTAssertEqual(try probe("fake_probe_max_predict_rows", Int64.self), 1000)
        // The runtime's own chunking: 1000 rows through the C entry point with
        // the default capacity of 256 rows, never more per call.
        let fresh = try load()
        try probeAddress("fake_probe_max_predict_rows").storeBytes(of: 0, as: Int64.self)
        var out = [Float](repeating: 0, count: 2000)
        let status = x.floats.withUnsafeBytes { xp in
            out.withUnsafeMutableBytes { op in
                fresh.fns.predict(fresh.instance, [xp.baseAddress], [op.baseAddress], 1000)
            }
        }
        XCTAssertEqual(status, 0)
        assertClose(out, want, "predict")
        XCTAssertEqual(try probe("fake_probe_max_predict_rows", Int64.self), 256)
    }

    func testWrongInputsAreRefusedWithClearMessages() throws {
        let lib = try load()
        XCTAssertEqual(message { _ = try lib.predict([HostTensor(shape: [5, 4], floats: .init(repeating: 0, count: 20))]) },
                       "input 'x' expects shape (-1, 3), found (5, 4).")
        XCTAssertEqual(message { _ = try lib.predict([HostTensor(shape: [3], floats: [1, 2, 3])]) },
                       "input 'x' expects shape (-1, 3), found (3,).")
        XCTAssertEqual(message { _ = try lib.predict([xs(2), xs(2)]) },
                       "model 'fake' takes 1 input, but 2 were given.")
        XCTAssertEqual(message { _ = try lib.trainStep(x: [xs(4)], y: [HostTensor(shape: [3, 2], floats: .init(repeating: 0, count: 6))]) },
                       "target 'y' has 3 rows, but the other arrays have 4; every input and target needs the same number of rows.")
        XCTAssertEqual(message { _ = try lib.predict([xs(2)], batchSize: 0) }, "the batch size must be at least 1 (got 0).")
        // int32 data for a float input is converted; (n, 3, 1) fits (-1, 3).
        let ints = HostTensor(shape: [2, 3], ints: [1, 2, 3, 4, 5, 6])
        assertClose(try lib.predict([ints])[0].floats, reference([1, 2, 3, 4, 5, 6], W: FakeModel.W, b: FakeModel.b), "predict from int32 input")
        let x = xs(2)
        XCTAssertEqual(try lib.predict([HostTensor(shape: [2, 3, 1], floats: x.floats)]), try lib.predict([x]))
        // Images with the channels first, for a channels_last image input: the message says so.
        let image = TensorSpec(name: "image", dtype: .float32, shape: [-1, 32, 32, 3])
        let planes = HostTensor(shape: [2, 3, 32, 32], floats: .init(repeating: 0, count: 2 * 3 * 32 * 32))
        XCTAssertEqual(message { _ = try lib.prepare(planes, image, role: "input") },
                       "input 'image' expects shape (-1, 32, 32, 3), found (2, 3, 32, 32), which looks channels_first (channels, height, width); "
                       + "the model is channels_last: move the channel axis last (numpy.moveaxis(x, 1, -1)).")
        XCTAssertEqual(message { _ = try lib.prepare(HostTensor(shape: [2, 32, 3, 32], floats: planes.floats), image, role: "input") },
                       "input 'image' expects shape (-1, 32, 32, 3), found (2, 32, 3, 32).")
    }

    func testRuntimeChecksArguments() throws {
        let lib = try load()
        let f = lib.fns
        XCTAssertEqual(f.predict(lib.instance, [nil], [nil], -1), -1)
        XCTAssertEqual(String(cString: f.lastError(lib.instance)!), "the number of rows must not be negative (got -1).")
        XCTAssertEqual(f.predict(lib.instance, [nil], [nil], 2), -1)
        XCTAssertEqual(String(cString: f.lastError(lib.instance)!), "input 0 ('x') of model 'fake' is a NULL pointer.")
        XCTAssertEqual(f.predict(lib.instance, nil, nil, 0), -1)
        XCTAssertEqual(f.reserve(lib.instance, 10), 0)
        XCTAssertEqual(String(cString: f.lastError(lib.instance)!), "", "a successful call clears the error")
        var buf = [Float](repeating: 0, count: 6)
        XCTAssertEqual(f.getWeight(lib.instance, 2, &buf, 6), -1)
        XCTAssertEqual(String(cString: f.lastError(lib.instance)!), "weight index 2 is out of range; model 'fake' has 2 weights.")
        XCTAssertEqual(f.getWeight(lib.instance, 0, &buf, 5), -1)
        XCTAssertEqual(String(cString: f.lastError(lib.instance)!), "weight 0 ('dense/kernel') has 6 elements, but get_weight was given 5.")
        XCTAssertEqual(f.getWeight(lib.instance, 0, nil, 6), -1)
        XCTAssertEqual(f.getWeight(lib.instance, 0, &buf, 6), 0)
        XCTAssertEqual(buf, FakeModel.W)
        XCTAssertEqual(f.numWeights(lib.instance), 2)
        // NULL instance: the thread-local error.
        XCTAssertEqual(f.predict(nil, nil, nil, 1), -1)
        XCTAssertEqual(String(cString: f.lastError(nil)!), "kiln_predict was given a NULL model instance.")
        XCTAssertNil(f.create(nil))
        XCTAssertEqual(String(cString: f.lastError(nil)!), "the model description is NULL.")
        XCTAssertEqual(f.saveWeights(lib.instance, nil), -1)
        XCTAssertEqual(f.loadWeights(lib.instance, ""), -1)
    }

    // MARK: - Training

    func testTrainStepMatchesHandSGD() throws {
        let lib = try load()
        let x = xs(4)
        let t: [Float] = [1, 0, 0.5, -1, 0, 2, 0.25, 0.75]
        let y = HostTensor(shape: [4, 2], floats: t)
        // Hand computation: MSE over 8 values, gradient 2 (y - t) / 8, SGD lr 0.1.
        let pred = reference(x.floats, W: FakeModel.W, b: FakeModel.b)
        let d = zip(pred, t).map { $0 - Double($1) }
        let loss = d.reduce(0) { $0 + $1 * $1 } / 8
        var W = FakeModel.W.map(Double.init), b = FakeModel.b.map(Double.init)
        for i in 0..<4 {
            for j in 0..<2 {
                let g = 2 * d[i * 2 + j] / 8
                for k in 0..<3 { W[k * 2 + j] -= 0.1 * Double(x.floats[i * 3 + k]) * g }
                b[j] -= 0.1 * g
            }
        }
        XCTAssertEqual(Double(try lib.trainStep(x: [x], y: [y])), loss, accuracy: 1e-6)
        let w = lib.getWeights()
        assertClose(w[0].floats, W, "kernel")
        assertClose(w[1].floats, b, "bias")
        XCTAssertEqual(lib.iterations, 1)
        XCTAssertEqual(try probe("fake_probe_last_iteration", Int64.self), 0)
        XCTAssertEqual(try probe("fake_probe_last_seed", UInt64.self), stepSeed(0, 0))
        lib.setSeed(99)
        _ = try lib.trainStep(x: [x], y: [y])
        XCTAssertEqual(try probe("fake_probe_last_iteration", Int64.self), 1)
        XCTAssertEqual(try probe("fake_probe_last_seed", UInt64.self), stepSeed(99, 1))
        // A batch larger than the reserved capacity grows the arena.
        let big = xs(700)
        XCTAssertTrue(try lib.trainStep(x: [big], y: [HostTensor(shape: [700, 2], floats: .init(repeating: 0, count: 1400))]).isFinite)
    }

    /// splitmix64 of (splitmix64(seed) ^ iteration), as kiln_step_seed: the first output of a
    /// generator started at v is splitmix64's mix of v.
    func stepSeed(_ seed: UInt64, _ it: UInt64) -> UInt64 {
        func mix(_ v: UInt64) -> UInt64 {
            var g = SplitMix64(state: v)
            return g.next()
        }
        return mix(mix(seed) ^ it)
    }

    func testTrainingDecreasesTheLoss() throws {
        let lib = try load()
        let x = xs(32)
        let y = HostTensor(shape: [32, 2], floats: stride(from: 0, to: 96, by: 3).flatMap { r -> [Float] in
            [x.floats[r] - x.floats[r + 2], 2 * x.floats[r + 1] + 0.5]
        })
        let h = try fit(lib, x: [x], y: [y], options: FitOptions(epochs: 30, batchSize: 8, shuffle: false))
        XCTAssertEqual(h.loss.count, 30)
        XCTAssertLessThan(h.loss.last!, h.loss.first! / 4)
        XCTAssertEqual(lib.iterations, 120)
    }

    func testEvaluateDoesNotChangeWeights() throws {
        let lib = try load()
        let x = xs(6), y = HostTensor(shape: [6, 2], floats: .init(repeating: 1, count: 12))
        let before = lib.getWeights()
        let e = try lib.evaluate(x: [x], y: [y])
        XCTAssertEqual(lib.getWeights(), before)
        XCTAssertEqual(lib.iterations, 0)
        XCTAssertEqual(try lib.trainStep(x: [x], y: [y]), e, "the step reports the loss before its update")
        XCTAssertNotEqual(lib.getWeights(), before)
    }

    func testLibraryWithoutTraining() throws {
        let lib = try load(training: false)
        XCTAssertFalse(lib.canTrain)
        XCTAssertEqual(lib.targets, [])
        XCTAssertEqual(try lib.predict([xs(2)])[0].shape, [2, 2])
        XCTAssertTrue(message { _ = try lib.trainStep(x: [xs(2)], y: []) }.contains("compiled without a training step"))
        var loss: Float = 0
        XCTAssertEqual(lib.fns.trainStep(lib.instance, nil, nil, 1, &loss), -1)
        XCTAssertEqual(String(cString: lib.fns.lastError(lib.instance)!),
                       "this library was compiled without a training step (model 'fake').")
    }

    func testTwoInstancesAreIndependent() throws {
        let a = try load(), b = try load()
        let x = xs(4), y = HostTensor(shape: [4, 2], floats: .init(repeating: 3, count: 8))
        _ = try a.trainStep(x: [x], y: [y])
        XCTAssertEqual(a.iterations, 1)
        XCTAssertEqual(b.iterations, 0)
        XCTAssertEqual(b.getWeights()[0].floats, FakeModel.W)
        XCTAssertNotEqual(a.getWeights()[0].floats, FakeModel.W)
        try b.setWeights([HostTensor(shape: [3, 2], floats: .init(repeating: 0, count: 6)),
                          HostTensor(shape: [2], floats: [1, 2])])
        XCTAssertEqual(try b.predict([x])[0].floats, [1, 2, 1, 2, 1, 2, 1, 2])
        XCTAssertNotEqual(try a.predict([x])[0].floats, [1, 2, 1, 2, 1, 2, 1, 2])
    }

    func testSetWeightsChecksShapes() throws {
        let lib = try load()
        XCTAssertEqual(message { try lib.setWeights([]) }, "model 'fake' has 2 weights, but 0 were given.")
        XCTAssertEqual(message { try lib.setWeights([HostTensor(shape: [2, 3], floats: .init(repeating: 0, count: 6)),
                                                     HostTensor(shape: [2], floats: [0, 0])]) },
                       "weight 0 ('dense/kernel') has shape (3, 2), but the array given has shape (2, 3).")
        XCTAssertEqual(lib.getWeights()[0].floats, FakeModel.W, "a refused set changes nothing")
    }

    // MARK: - Saving and loading

    func testSaveLoadRestoresEverythingAndTrainingContinuesIdentically() throws {
        let dir = try FakeModel.tempDir("kiln-save")
        let a = try load()
        let x = xs(8), y = HostTensor(shape: [8, 2], floats: (0..<16).map { Float($0) / 8 })
        a.setSeed(7)
        for _ in 0..<3 { _ = try a.trainStep(x: [x], y: [y]) }
        try a.saveWeights(to: dir + "/w.kiln")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["w.kiln"], "no temporary file left")
        let b = try load()
        try b.loadWeights(from: dir + "/w.kiln")
        XCTAssertEqual(b.getWeights(), a.getWeights())
        XCTAssertEqual(b.iterations, 3)
        for _ in 0..<3 {
            XCTAssertEqual(try a.trainStep(x: [x], y: [y]), try b.trainStep(x: [x], y: [y]))
            XCTAssertEqual(try probe("fake_probe_last_seed", UInt64.self), stepSeed(7, UInt64(b.iterations - 1)),
                           "the seed is restored too")
        }
        XCTAssertEqual(b.getWeights(), a.getWeights())
        // Saving again over an existing file replaces it.
        try b.saveWeights(to: dir + "/w.kiln")
        try a.loadWeights(from: dir + "/w.kiln")
        XCTAssertEqual(a.iterations, 6)
    }

    func testBadFilesAreRefusedAndChangeNothing() throws {
        let dir = try FakeModel.tempDir("kiln-bad-save")
        let lib = try load()
        let path = dir + "/w.kiln"
        try lib.saveWeights(to: path)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))
        _ = try lib.trainStep(x: [xs(4)], y: [HostTensor(shape: [4, 2], floats: .init(repeating: 5, count: 8))])
        let trained = lib.getWeights()

        func refused(_ data: Data, _ expected: String, line: UInt = #line) throws {
            try data.write(to: URL(fileURLWithPath: path))
            XCTAssertEqual(message { try lib.loadWeights(from: path) }, expected, line: line)
            XCTAssertEqual(lib.getWeights(), trained, line: line)
            XCTAssertEqual(lib.iterations, 1, line: line)
        }
        var flipped = good
        flipped[good.count - 20] ^= 0x40   // inside the state block
        try refused(flipped, "'\(path)' is corrupted (its checksum does not match its contents).")
        try refused(good.prefix(good.count - 3), "'\(path)' is truncated (\(good.count - 3) bytes, expected \(good.count)).")
        try refused(good.prefix(10), "'\(path)' is not a Kiln weights file: it is too short (10 bytes).")
        var magic = good
        magic[0] = UInt8(ascii: "X")
        try refused(magic, "'\(path)' is not a Kiln weights file (its first bytes are not \"KILNSTAT\").")
        var bigger = good
        bigger[16] = 64   // state_bytes
        try refused(bigger, "'\(path)' holds 64 bytes of state, but model 'fake' has 32.")
        XCTAssertEqual(message { try lib.loadWeights(from: dir + "/missing") },
                       "cannot open weights file '\(dir)/missing': No such file or directory.")
        // The good file still loads.
        try good.write(to: URL(fileURLWithPath: path))
        try lib.loadWeights(from: path)
        XCTAssertEqual(lib.getWeights()[0].floats, FakeModel.W)
        XCTAssertEqual(lib.iterations, 0)
    }

    func testFailedSaveLeavesNoFile() throws {
        let dir = try FakeModel.tempDir("kiln-nosave")
        let lib = try load()
        let path = dir + "/missing/w.kiln"
        XCTAssertEqual(message { try lib.saveWeights(to: path) },
                       "cannot write weights to '\(path)': No such file or directory.")
        XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }
}
