// Every kernel, end to end: a layer-level model built by hand, compiled with
// Compiler.compile, loaded with CompiledLibrary, run with predict on 1, 7
// (in chunks of 3) and 300 (chunks of 256 + 44) rows, and compared with a
// naive reference written here in Double.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnRuntime

// MARK: - Naive references (Double, row-major, channels_last)

enum Ref {
    static func dense(_ x: [Double], inDim: Int, _ w: [Double], units: Int, _ b: [Double]?) -> [Double] {
        let rows = x.count / inDim
        var y = [Double](repeating: 0, count: rows * units)
        for r in 0..<rows {
            for u in 0..<units {
                var s = b?[u] ?? 0
                for i in 0..<inDim { s += x[r * inDim + i] * w[i * units + u] }
                y[r * units + u] = s
            }
        }
        return y
    }

    static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
    static func softplus(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }

    /// Keras 3 / JAX definitions; softmax and log_softmax over the last axis of length `last`.
    /// `alpha` is the layer's alpha as LayerOp.activation carries it (0: the default).
    static func activation(_ a: Activation, _ x: [Double], last: Int, alpha: Double = 0) -> [Double] {
        guard let y = activationIfKnown(a, x, last: last, alpha: alpha) else {
            XCTFail("the test has no reference for activation '\(a.rawValue)'")
            return x.map { _ in .nan }
        }
        return y
    }

    static func activationIfKnown(_ a: Activation, _ x: [Double], last: Int, alpha: Double = 0) -> [Double]? {
        // By Keras name, so that activations added to the enum later show up as "no reference".
        switch a.rawValue {
        case "linear": return x
        case "relu": return alpha == 0 ? x.map { max($0, 0) } : x.map { $0 >= 0 ? $0 : alpha * $0 }
        case "sigmoid": return x.map(sigmoid)
        case "tanh": return x.map { Foundation.tanh($0) }
        case "elu":
            let al = alpha == 0 ? 1 : alpha
            return x.map { $0 > 0 ? $0 : al * (exp($0) - 1) }
        case "selu":
            let al = 1.6732632423543772848170429916717, scale = 1.0507009873554804934193349852946
            return x.map { scale * ($0 > 0 ? $0 : al * (exp($0) - 1)) }
        case "softplus": return x.map(softplus)
        case "softsign": return x.map { $0 / (1 + abs($0)) }
        case "silu": return x.map { $0 * sigmoid($0) }
        case "gelu": return x.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }
        case "exponential": return x.map { exp($0) }
        case "hard_sigmoid": return x.map { min(max($0 / 6 + 0.5, 0), 1) }
        case "hard_silu": return x.map { $0 * min(max($0 / 6 + 0.5, 0), 1) }
        case "leaky_relu":
            let slope = alpha == 0 ? 0.2 : alpha
            return x.map { $0 >= 0 ? $0 : slope * $0 }
        case "relu6": return x.map { min(max($0, 0), 6) }
        case "mish": return x.map { $0 * Foundation.tanh(softplus($0)) }
        case "celu":
            let al = alpha == 0 ? 1 : alpha
            return x.map { max($0, 0) + min(0, al * (exp($0 / al) - 1)) }
        case "hard_shrink": return x.map { abs($0) > 0.5 ? $0 : 0 }
        case "hard_tanh": return x.map { min(max($0, -1), 1) }
        case "log_sigmoid": return x.map { -softplus(-$0) }
        case "soft_shrink": return x.map { $0 > 0.5 ? $0 - 0.5 : ($0 < -0.5 ? $0 + 0.5 : 0) }
        case "sparse_plus": return x.map { $0 <= -1 ? 0 : ($0 >= 1 ? $0 : ($0 + 1) * ($0 + 1) / 4) }
        case "squareplus": return x.map { ($0 + ($0 * $0 + 4).squareRoot()) / 2 }
        case "tanh_shrink": return x.map { $0 - Foundation.tanh($0) }
        case "sparsemax":
            // As keras/src/backend/*/nn.py computes it (all backends): sort descending, cumsum,
            // support = z_(r) - (cumsum_r - 1) / r > 0, tau = (sum of cumsum over the support - 1) / k.
            // (The paper's tau uses cumsum_k alone; the two agree only when k == 1.)
            var y = x
            for start in stride(from: 0, to: x.count, by: last) {
                let z = Array(x[start..<start + last])
                let sorted = z.sorted(by: >)
                var cum = 0.0, k = 0.0, cumSum = 0.0
                for (j, v) in sorted.enumerated() {
                    cum += v
                    if v - (cum - 1) / Double(j + 1) > 0 { k += 1; cumSum += cum }
                }
                let tau = (cumSum - 1) / k
                for i in 0..<last { y[start + i] = max(z[i] - tau, 0) }
            }
            return y
        case "softmax", "log_softmax":
            var y = x
            for start in stride(from: 0, to: x.count, by: last) {
                let row = x[start..<start + last]
                let m = row.max()!
                let s = row.reduce(0) { $0 + exp($1 - m) }
                for i in start..<start + last {
                    y[i] = a == .softmax ? exp(x[i] - m) / s : x[i] - m - log(s)
                }
            }
            return y
        default:
            return nil
        }
    }

    /// Output size and leading pad of a window along one axis (TensorFlow's SAME rule).
    static func geometry(_ size: Int, _ k: Int, _ s: Int, _ padding: Padding) -> (out: Int, before: Int) {
        if padding == .valid { return ((size - k) / s + 1, 0) }
        let out = (size + s - 1) / s
        return (out, max((out - 1) * s + k - size, 0) / 2)
    }

    /// x (n, h, w, c) conv k (kh, kw, c, f) [+ b], then an activation.
    static func conv2D(_ x: [Double], h: Int, w: Int, c: Int, _ k: [Double], kh: Int, kw: Int, f: Int, bias: [Double]?,
                       strides: [Int], padding: Padding, act: Activation) -> (y: [Double], shape: [Int]) {
        let n = x.count / (h * w * c)
        let (oh, pt) = geometry(h, kh, strides[0], padding), (ow, pl) = geometry(w, kw, strides[1], padding)
        var y = [Double](repeating: 0, count: n * oh * ow * f)
        for b in 0..<n { for i in 0..<oh { for j in 0..<ow { for o in 0..<f {
            var s = bias?[o] ?? 0
            for di in 0..<kh { for dj in 0..<kw {
                let (xi, xj) = (i * strides[0] + di - pt, j * strides[1] + dj - pl)
                guard xi >= 0, xi < h, xj >= 0, xj < w else { continue }
                for ci in 0..<c { s += x[((b * h + xi) * w + xj) * c + ci] * k[((di * kw + dj) * c + ci) * f + o] }
            } }
            y[((b * oh + i) * ow + j) * f + o] = s
        } } } }
        return (activation(act, y, last: f), [n, oh, ow, f])
    }

    /// Max or average pooling; padded cells are left out (avg divides by the cells inside the input).
    static func pool(max isMax: Bool, _ x: [Double], h: Int, w: Int, c: Int, pool: [Int], strides: [Int], padding: Padding) -> (y: [Double], shape: [Int]) {
        let n = x.count / (h * w * c)
        let (oh, pt) = geometry(h, pool[0], strides[0], padding), (ow, pl) = geometry(w, pool[1], strides[1], padding)
        var y = [Double](repeating: 0, count: n * oh * ow * c)
        for b in 0..<n { for i in 0..<oh { for j in 0..<ow { for ch in 0..<c {
            var acc = isMax ? -Double.infinity : 0
            var count = 0
            for di in 0..<pool[0] { for dj in 0..<pool[1] {
                let (xi, xj) = (i * strides[0] + di - pt, j * strides[1] + dj - pl)
                guard xi >= 0, xi < h, xj >= 0, xj < w else { continue }
                let v = x[((b * h + xi) * w + xj) * c + ch]
                acc = isMax ? Swift.max(acc, v) : acc + v
                count += 1
            } }
            y[((b * oh + i) * ow + j) * c + ch] = isMax ? acc : acc / Double(count)
        } } } }
        return (y, [n, oh, ow, c])
    }

    /// Concatenation of row-major tensors of the given shapes along `axis`.
    static func concat(_ parts: [([Double], [Int])], axis: Int) -> [Double] {
        let outer = parts[0].1[..<axis].reduce(1, *)
        var y: [Double] = []
        for o in 0..<outer {
            for (v, s) in parts {
                let block = s[axis...].reduce(1, *)
                y += v[o * block..<(o + 1) * block]
            }
        }
        return y
    }
}

extension HostTensor {
    var doubles: [Double] { dtype == .float32 ? floats.map(Double.init) : ints.map(Double.init) }
}

// MARK: - Tests

final class KernelTests: XCTestCase {
    /// (rows, predict batch size): a single row, chunks of 3 (3+3+1), chunks of 256 (256+44).
    static let runs: [(rows: Int, batch: Int)] = [(1, 256), (7, 3), (300, 256)]

    /// Runs lib on fresh inputs for each row count and compares every output with the reference.
    func check(_ lib: CompiledLibrary, seed: UInt64, inputs: (Int, inout TestRNG) -> [HostTensor],
               reference: ([HostTensor]) -> [(y: [Double], shape: [Int])],
               file: StaticString = #filePath, line: UInt = #line) throws {
        var rng = TestRNG(seed)
        for (rows, batch) in Self.runs {
            let x = inputs(rows, &rng)
            let got = try lib.predict(x, batchSize: batch)
            let want = reference(x)
            XCTAssertEqual(got.count, want.count, "number of outputs", file: file, line: line)
            for (k, (g, w)) in zip(got, want).enumerated() {
                assertClose(g, w.y, shape: w.shape, "\(lib.name) output \(k) '\(lib.outputs[k].name)' with \(rows) rows",
                            file: file, line: line)
            }
        }
    }

    func testDense2DAnd3DAnd4D() throws {
        let dir = try makeTempDir(self)
        var rng = TestRNG(1)
        var m = GraphMaker("dense")
        let x2 = m.input("x2", [6]), x3 = m.input("x3", [3, 6]), x4 = m.input("x4", [2, 3, 6])
        let w1 = rng.floats(6 * 4), b1 = rng.floats(4)
        let w2 = rng.floats(6 * 3), b2 = rng.floats(3)
        let w3 = rng.floats(6 * 5)
        let w4 = rng.floats(6 * 2), b4 = rng.floats(2)
        m.output(try m.layer(DenseKind(units: 4, activation: .linear, useBias: true).op,
                             [x2, m.param("d1/kernel", [6, 4], w1), m.param("d1/bias", [4], b1)], "d1"), "d1")
        m.output(try m.layer(DenseKind(units: 3, activation: .relu, useBias: true).op,
                             [x2, m.param("d2/kernel", [6, 3], w2), m.param("d2/bias", [3], b2)], "d2"), "d2")
        m.output(try m.layer(DenseKind(units: 5, activation: .tanh, useBias: false).op, [x3, m.param("d3/kernel", [6, 5], w3)], "d3"), "d3")
        m.output(try m.layer(DenseKind(units: 2, activation: .sigmoid, useBias: true).op,
                             [x4, m.param("d4/kernel", [6, 2], w4), m.param("d4/bias", [2], b4)], "d4"), "d4")
        let lib = try compileAndLoad(m.model(), name: "dense", dir: dir)
        let d = { (a: [Float]) in a.map(Double.init) }
        try check(lib, seed: 11, inputs: { n, r in
            [HostTensor(shape: [n, 6], floats: r.floats(n * 6, -2, 2)),
             HostTensor(shape: [n, 3, 6], floats: r.floats(n * 18, -2, 2)),
             HostTensor(shape: [n, 2, 3, 6], floats: r.floats(n * 36, -2, 2))]
        }, reference: { x in
            let n = x[0].rows
            return [(Ref.dense(x[0].doubles, inDim: 6, d(w1), units: 4, d(b1)), [n, 4]),
                    (Ref.activation(.relu, Ref.dense(x[0].doubles, inDim: 6, d(w2), units: 3, d(b2)), last: 3), [n, 3]),
                    (Ref.activation(.tanh, Ref.dense(x[1].doubles, inDim: 6, d(w3), units: 5, nil), last: 5), [n, 3, 5]),
                    (Ref.activation(.sigmoid, Ref.dense(x[2].doubles, inDim: 6, d(w4), units: 2, d(b4)), last: 2), [n, 2, 3, 2])]
        })
    }

    /// Every case of Activation (Keras defaults) plus the alpha variants of the ELU, LeakyReLU and ReLU layers.
    func testEveryActivation() throws {
        let dir = try makeTempDir(self)
        var m = GraphMaker("acts")
        let x = m.input("x", [3, 5])
        var cases: [(Activation, Float)] = Activation.allCases.map { ($0, 0) }
        cases += [(.elu, 0.5), (.leakyRelu, 0.3), (.relu, 0.1), (.celu, 0.5)]
        for (i, (a, alpha)) in cases.enumerated() {
            m.output(try m.layer(ActivationKind(a, alpha: alpha).op, [x], "act\(i)"), "\(a.rawValue)_\(alpha)")
        }
        let lib = try compileAndLoad(m.model(), name: "acts", dir: dir)
        try check(lib, seed: 12, inputs: { n, r in
            var v = r.floats(n * 15, -5, 5)
            // Row 0: large magnitudes (softmax stability, saturation), 0, and the kinks of hard_sigmoid, relu6, the shrinks and sparse_plus.
            let special: [Float] = [40, -40, 0, 3, -3, 1, -1, 6, -6, 0.5, 1e-3, -1e-3, -0.5, -12, 30]
            for i in 0..<15 { v[i] = special[i] }
            return [HostTensor(shape: [n, 3, 5], floats: v)]
        }, reference: { xs in
            let v = xs[0].doubles
            return cases.map { a, alpha in (Ref.activation(a, v, last: 5, alpha: Double(alpha)), xs[0].shape) }
        })
    }

    /// The activations over the last axis on inputs with ties (equal maxima, equal support members).
    func testLastAxisActivationsWithTies() throws {
        let dir = try makeTempDir(self)
        var m = GraphMaker("ties")
        let x = m.input("x", [4, 5])
        let acts: [Activation] = [.softmax, .logSoftmax, .sparsemax]
        for a in acts { m.output(try m.layer(ActivationKind(a, alpha: 0).op, [x], a.rawValue), a.rawValue) }
        let lib = try compileAndLoad(m.model(), name: "ties", dir: dir)
        let ties: [Float] = [0.5, 0.5, -1, -2, -3,  0.25, -0.25, 0.25, -0.25, 0,  -2, -2, -2, -2, -2,  1, 3, 3, 0.5, 3]
        try check(lib, seed: 19, inputs: { n, r in
            var v = r.floats(n * 20, -2, 2)
            for i in 0..<20 { v[i] = ties[i] }
            return [HostTensor(shape: [n, 4, 5], floats: v)]
        }, reference: { xs in acts.map { (Ref.activation($0, xs[0].doubles, last: 5), xs[0].shape) } })
    }

    /// Conv2D valid/same, strides (1,1), (2,2), (2,1), on an odd (7x9) and an even (8x6) input;
    /// with bias + activation (fused) and without bias.
    func testConv2D() throws {
        let dir = try makeTempDir(self)
        var rng = TestRNG(2)
        var m = GraphMaker("conv")
        let sizes: [(h: Int, w: Int, c: Int)] = [(7, 9, 2), (8, 6, 3)]
        let xs = sizes.enumerated().map { i, s in m.input("x\(i)", [s.h, s.w, s.c]) }
        struct Cfg { var input: Int; var kernel: [Int]; var strides: [Int]; var padding: Padding; var f: Int
            var bias: Bool; var act: Activation; var k: [Float]; var b: [Float] }
        var cfgs: [Cfg] = []
        for (i, s) in sizes.enumerated() {
            for padding in [Padding.valid, .same] {
                for (j, strides) in [[1, 1], [2, 2], [2, 1]].enumerated() {
                    let kernel = strides == [2, 1] ? [2, 3] : [3, 3]
                    let f = 3 + j % 2
                    let (bias, act): (Bool, Activation) = [(true, .relu), (false, .linear), (true, .linear)][j]
                    let c = Cfg(input: i, kernel: kernel, strides: strides, padding: padding, f: f, bias: bias, act: act,
                                k: rng.dyadic(kernel[0] * kernel[1] * s.c * f, denominator: 16), b: rng.dyadic(f))
                    cfgs.append(c)
                    let name = "conv_x\(i)_\(padding.rawValue)_s\(strides[0])\(strides[1])"
                    var ins = [xs[i], m.param(name + "/kernel", kernel + [s.c, f], c.k)]
                    if bias { ins.append(m.param(name + "/bias", [f], c.b)) }
                    m.output(try m.layer(Conv2DKind(filters: f, kernel: kernel, strides: strides, padding: padding, activation: act, useBias: bias).op,
                                         ins, name), name)
                }
            }
        }
        let lib = try compileAndLoad(m.model(), name: "conv", dir: dir)
        try check(lib, seed: 13, inputs: { n, r in
            sizes.map { s in HostTensor(shape: [n, s.h, s.w, s.c], floats: r.dyadic(n * s.h * s.w * s.c)) }
        }, reference: { x in
            cfgs.map { c in
                let s = sizes[c.input]
                return Ref.conv2D(x[c.input].doubles, h: s.h, w: s.w, c: s.c, c.k.map(Double.init), kh: c.kernel[0], kw: c.kernel[1], f: c.f,
                                  bias: c.bias ? c.b.map(Double.init) : nil, strides: c.strides, padding: c.padding, act: c.act)
            }
        })
    }

    /// MaxPooling2D and AveragePooling2D, valid and same, several windows and strides, odd and even inputs.
    func testPooling() throws {
        let dir = try makeTempDir(self)
        var m = GraphMaker("pool")
        let sizes: [(h: Int, w: Int, c: Int)] = [(7, 5, 3), (6, 8, 2)]
        let xs = sizes.enumerated().map { i, s in m.input("x\(i)", [s.h, s.w, s.c]) }
        let windows: [(pool: [Int], strides: [Int], padding: Padding)] = [
            ([2, 2], [2, 2], .valid), ([2, 2], [2, 2], .same), ([3, 3], [2, 2], .same),
            ([3, 2], [1, 2], .valid), ([3, 3], [1, 1], .same), ([2, 3], [2, 1], .same), ([3, 3], [3, 3], .same),
        ]
        var cfgs: [(input: Int, isMax: Bool, pool: [Int], strides: [Int], padding: Padding)] = []
        for i in sizes.indices {
            for isMax in [true, false] {
                for wdw in windows {
                    let op: LayerOp = isMax ? Pooling2DKind(.max, pool: wdw.pool, strides: wdw.strides, padding: wdw.padding).op
                        : Pooling2DKind(.avg, pool: wdw.pool, strides: wdw.strides, padding: wdw.padding).op
                    let name = "\(isMax ? "max" : "avg")_x\(i)_p\(wdw.pool[0])\(wdw.pool[1])_s\(wdw.strides[0])\(wdw.strides[1])_\(wdw.padding.rawValue)"
                    m.output(try m.layer(op, [xs[i]], name), name)
                    cfgs.append((i, isMax, wdw.pool, wdw.strides, wdw.padding))
                }
            }
        }
        let lib = try compileAndLoad(m.model(), name: "pool", dir: dir)
        try check(lib, seed: 14, inputs: { n, r in
            sizes.map { s in HostTensor(shape: [n, s.h, s.w, s.c], floats: r.floats(n * s.h * s.w * s.c, -3, 3)) }
        }, reference: { x in
            cfgs.map { c in
                let s = sizes[c.input]
                return Ref.pool(max: c.isMax, x[c.input].doubles, h: s.h, w: s.w, c: s.c, pool: c.pool, strides: c.strides, padding: c.padding)
            }
        })
    }

    /// GlobalAveragePooling2D, Flatten and Reshape (as outputs of their own, i.e. aliases of the input, and feeding a Dense).
    func testGlobalAvgPoolFlattenReshape() throws {
        let dir = try makeTempDir(self)
        var rng = TestRNG(3)
        var m = GraphMaker("shapes")
        let x = m.input("x", [4, 3, 2])
        m.output(try m.layer(GlobalPooling2DKind(.avg).op, [x], "gap"), "gap")
        let flat = try m.layer(FlattenKind().op, [x], "flatten")
        m.output(flat, "flatten")
        m.output(try m.layer(ReshapeKind(target: [6, 4]).op, [x], "reshape"), "reshape")
        let r2 = try m.layer(ReshapeKind(target: [-1, 2]).op, [x], "reshape_free")
        m.output(r2, "reshape_free")
        let w = rng.floats(24 * 5), b = rng.floats(5)
        m.output(try m.layer(DenseKind(units: 5, activation: .linear, useBias: true).op,
                             [flat, m.param("dense/kernel", [24, 5], w), m.param("dense/bias", [5], b)], "dense"), "dense")
        // Reshape in the middle: (12, 2) -> Dense over the last axis.
        let w2 = rng.floats(2 * 3)
        m.output(try m.layer(DenseKind(units: 3, activation: .linear, useBias: false).op, [r2, m.param("dense2/kernel", [2, 3], w2)], "dense2"), "dense2")
        let lib = try compileAndLoad(m.model(), name: "shapes", dir: dir)
        try check(lib, seed: 15, inputs: { n, r in [HostTensor(shape: [n, 4, 3, 2], floats: r.floats(n * 24, -2, 2))] }, reference: { xs in
            let v = xs[0].doubles, n = xs[0].rows
            var gap = [Double](repeating: 0, count: n * 2)
            for s in 0..<n { for p in 0..<12 { for c in 0..<2 { gap[s * 2 + c] += v[(s * 12 + p) * 2 + c] / 12 } } }
            return [(gap, [n, 2]), (v, [n, 24]), (v, [n, 6, 4]), (v, [n, 12, 2]),
                    (Ref.dense(v, inDim: 24, w.map(Double.init), units: 5, b.map(Double.init)), [n, 5]),
                    (Ref.dense(v, inDim: 2, w2.map(Double.init), units: 3, nil), [n, 12, 3])]
        })
    }

    /// Embedding on int32 ids of rank 2 and rank 3.
    func testEmbedding() throws {
        let dir = try makeTempDir(self)
        var rng = TestRNG(4)
        var m = GraphMaker("embed")
        let ids1 = m.input("ids1", [5], dtype: .i32), ids2 = m.input("ids2", [2, 3], dtype: .i32)
        let t1 = rng.floats(10 * 4), t2 = rng.floats(7 * 3)
        m.output(try m.layer(EmbeddingKind(inputDim: 10, outputDim: 4, maskZero: false).op, [ids1, m.param("e1/embeddings", [10, 4], t1)], "e1"), "e1")
        m.output(try m.layer(EmbeddingKind(inputDim: 7, outputDim: 3, maskZero: false).op, [ids2, m.param("e2/embeddings", [7, 3], t2)], "e2"), "e2")
        let lib = try compileAndLoad(m.model(), name: "embed", dir: dir)
        XCTAssertEqual(lib.inputs.map(\.dtype), [.int32, .int32])
        func gather(_ ids: [Int32], _ table: [Float], _ d: Int) -> [Double] {
            ids.flatMap { id in table[Int(id) * d..<(Int(id) + 1) * d].map(Double.init) }
        }
        try check(lib, seed: 16, inputs: { n, r in
            var a = (0..<n * 5).map { _ in Int32(r.int(10)) }
            a[0] = 0; if a.count > 1 { a[1] = 9 }   // both ends of the table
            return [HostTensor(shape: [n, 5], ints: a), HostTensor(shape: [n, 2, 3], ints: (0..<n * 6).map { _ in Int32(r.int(7)) })]
        }, reference: { x in
            let n = x[0].rows
            return [(gather(x[0].ints, t1, 4), [n, 5, 4]), (gather(x[1].ints, t2, 3), [n, 2, 3, 3])]
        })
    }

    /// The Embedding gradient (scatter-add into the table), through one SGD step of
    /// Embedding -> MSE: repeated ids must add up, id 0 is an ordinary row, and ids outside
    /// [0, rows) (gather gave zeros there) change nothing. Compared with a naive loop.
    func testEmbeddingGradientScatterAdd() throws {
        let dir = try makeTempDir(self)
        var rng = TestRNG(41)
        let (rows, dim, steps, n) = (11, 19, 6, 37)
        let table = rng.floats(rows * dim)
        var m = GraphMaker("embed_grad")
        let ids = m.input("ids", [steps], dtype: .i32)
        m.output(try m.layer(EmbeddingKind(inputDim: rows, outputDim: dim, maskZero: false).op,
                             [ids, m.param("e/embeddings", [rows, dim], table)], "e"), "e")
        let lr = 0.5
        let lib = try compileAndLoad(m.model(training: TrainingConfig(losses: [LossConfig(name: "mean_squared_error")],
                                                                      optimizer: OptimizerConfig(name: "SGD", learningRate: Float(lr)))),
                                     name: "embed_grad", dir: dir)
        var a = (0..<n * steps).map { _ in Int32(rng.int(rows + 4)) - 2 }   // -2 ..< rows + 2
        a[0] = 0; a[1] = 0; a[2] = -1; a[3] = Int32(rows); a[4] = Int32(rows - 1); a[5] = Int32(rows - 1)
        XCTAssertTrue(a.contains { $0 < 0 } && a.contains { $0 >= rows } && Set(a).count < a.count)
        let target = rng.floats(n * steps * dim)

        // Naive: e = gather(table, ids); dL/de = 2 (e - t) / count; grad[id] += dL/de[p] for valid ids.
        let count = Double(n * steps * dim)
        var grad = [Double](repeating: 0, count: rows * dim)
        for (p, id) in a.enumerated() {
            let valid = id >= 0 && Int(id) < rows
            for k in 0..<dim {
                let e = valid ? Double(table[Int(id) * dim + k]) : 0
                let dy = 2 * (e - Double(target[p * dim + k])) / count
                if valid { grad[Int(id) * dim + k] += dy }
            }
        }
        _ = try lib.trainStep(x: [HostTensor(shape: [n, steps], ints: a)], y: [HostTensor(shape: [n, steps, dim], floats: target)])
        let after = lib.getWeights()[0].floats
        assertClose(after, zip(table, grad).map { Double($0) - lr * $1 }, "embedding table after one SGD step")
        let implied = zip(table, after).map { Float((Double($0) - Double($1)) / lr) }
        assertClose(implied, grad, rtol: 1e-4, atol: 1e-6, "embedding gradient")
        // Rows no valid id hits keep their exact values.
        for r in 0..<rows where !a.contains(Int32(r)) {
            XCTAssertEqual(Array(after[r * dim..<(r + 1) * dim]), Array(table[r * dim..<(r + 1) * dim]), "row \(r)")
        }
    }

    /// Concatenate on axis -1 and axis 1 (two and three inputs) and Add (two and three inputs).
    func testConcatenateAndAdd() throws {
        let dir = try makeTempDir(self)
        var m = GraphMaker("concat_add")
        let a = m.input("a", [3, 4]), b = m.input("b", [3, 2]), c = m.input("c", [2, 4]), d = m.input("d", [3, 4])
        m.output(try m.layer(ConcatenateKind(axis: -1).op, [a, b], "cat_last"), "cat_last")
        m.output(try m.layer(ConcatenateKind(axis: 1).op, [a, c], "cat_1"), "cat_1")
        m.output(try m.layer(ConcatenateKind(axis: -1).op, [b, a, b], "cat3"), "cat3")
        m.output(try m.layer(AddKind().op, [a, d], "add2"), "add2")
        m.output(try m.layer(AddKind().op, [a, d, a], "add3"), "add3")
        let lib = try compileAndLoad(m.model(), name: "concat_add", dir: dir)
        try check(lib, seed: 17, inputs: { n, r in
            [HostTensor(shape: [n, 3, 4], floats: r.floats(n * 12)), HostTensor(shape: [n, 3, 2], floats: r.floats(n * 6)),
             HostTensor(shape: [n, 2, 4], floats: r.floats(n * 8)), HostTensor(shape: [n, 3, 4], floats: r.floats(n * 12))]
        }, reference: { x in
            let n = x[0].rows
            let (av, bv, cv, dv) = (x[0].doubles, x[1].doubles, x[2].doubles, x[3].doubles)
            return [(Ref.concat([(av, [n, 3, 4]), (bv, [n, 3, 2])], axis: 2), [n, 3, 6]),
                    (Ref.concat([(av, [n, 3, 4]), (cv, [n, 2, 4])], axis: 1), [n, 5, 4]),
                    (Ref.concat([(bv, [n, 3, 2]), (av, [n, 3, 4]), (bv, [n, 3, 2])], axis: 2), [n, 3, 8]),
                    (zip(av, dv).map { $0 + $1 }, [n, 3, 4]),
                    (zip(av, dv).map { $0 + $1 + $0 }, [n, 3, 4])]
        })
    }

    /// A small CNN through the whole chain (conv -> pool -> conv same/stride 2 -> flatten -> dense softmax),
    /// checked against the references composed.
    func testSmallCNNChain() throws {
        let dir = try makeTempDir(self)
        var rng = TestRNG(5)
        var m = GraphMaker("cnn")
        let x = m.input("x", [9, 8, 1])
        let k1 = rng.floats(3 * 3 * 1 * 4, -0.5, 0.5), b1 = rng.floats(4, -0.1, 0.1)
        let k2 = rng.floats(3 * 3 * 4 * 3, -0.5, 0.5), b2 = rng.floats(3, -0.1, 0.1)
        let w = rng.floats(2 * 2 * 3 * 5), b = rng.floats(5)
        var h = try m.layer(Conv2DKind(filters: 4, kernel: [3, 3], strides: [1, 1], padding: .valid, activation: .relu, useBias: true).op,
                            [x, m.param("c1/kernel", [3, 3, 1, 4], k1), m.param("c1/bias", [4], b1)], "c1")   // (7, 6, 4)
        h = try m.layer(Pooling2DKind(.max, pool: [2, 2], strides: [2, 2], padding: .same).op, [h], "p1")                 // (4, 3, 4)
        h = try m.layer(Conv2DKind(filters: 3, kernel: [3, 3], strides: [2, 2], padding: .same, activation: .tanh, useBias: true).op,
                        [h, m.param("c2/kernel", [3, 3, 4, 3], k2), m.param("c2/bias", [3], b2)], "c2")         // (2, 2, 3)
        h = try m.layer(FlattenKind().op, [h], "flat")
        h = try m.layer(DenseKind(units: 5, activation: .softmax, useBias: true).op,
                        [h, m.param("out/kernel", [12, 5], w), m.param("out/bias", [5], b)], "out")
        m.output(h, "out")
        let lib = try compileAndLoad(m.model(), name: "cnn", dir: dir)
        let d = { (a: [Float]) in a.map(Double.init) }
        try check(lib, seed: 18, inputs: { n, r in [HostTensor(shape: [n, 9, 8, 1], floats: r.floats(n * 72))] }, reference: { xs in
            let n = xs[0].rows
            let y1 = Ref.conv2D(xs[0].doubles, h: 9, w: 8, c: 1, d(k1), kh: 3, kw: 3, f: 4, bias: d(b1), strides: [1, 1], padding: .valid, act: .relu)
            let y2 = Ref.pool(max: true, y1.y, h: 7, w: 6, c: 4, pool: [2, 2], strides: [2, 2], padding: .same)
            let y3 = Ref.conv2D(y2.y, h: 4, w: 3, c: 4, d(k2), kh: 3, kw: 3, f: 3, bias: d(b2), strides: [2, 2], padding: .same, act: .tanh)
            XCTAssertEqual(y3.shape, [n, 2, 2, 3])
            return [(Ref.activation(.softmax, Ref.dense(y3.y, inDim: 12, d(w), units: 5, d(b)), last: 5), [n, 5])]
        })
    }
}
