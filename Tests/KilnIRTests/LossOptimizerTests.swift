// Losses.swift against hand-written float64 formulas (values and gradients),
// and one step of every optimizer of Optimizers.swift against the Keras 3
// update rules written out by hand.

import Foundation
import XCTest
import KilnIR
import KilnPasses
import KilnReference

/// Keras works in float32: its constants are the float32 roundings.
private func f(_ x: Double) -> Double { Double(Float(x)) }
private let eps = f(1e-7)

final class LossTests: XCTestCase {
    // MARK: the textbook formulas, one row at a time

    static func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

    static func reference(_ cfg: LossConfig, _ t0: [Double], _ p: [Double], allBinary: Bool) -> Double {
        let k = p.count
        let idx = 0..<k
        func mean(_ g: (Int) -> Double) -> Double { idx.map(g).reduce(0, +) / Double(k) }
        func sum(_ g: (Int) -> Double) -> Double { idx.map(g).reduce(0, +) }
        func clip(_ x: Double, _ lo: Double, _ hi: Double) -> Double { min(max(x, lo), hi) }
        let ls = Double(cfg.labelSmoothing)
        var t = t0
        switch cfg.name {
        case "mean_squared_error": return mean { pow(t[$0] - p[$0], 2) }
        case "mean_absolute_error": return mean { abs(t[$0] - p[$0]) }
        case "mean_absolute_percentage_error": return 100 * mean { abs((t[$0] - p[$0]) / max(abs(t[$0]), eps)) }
        case "mean_squared_logarithmic_error": return mean { pow(log(max(p[$0], eps) + 1) - log(max(t[$0], eps) + 1), 2) }
        case "hinge", "squared_hinge":
            let s = allBinary ? t.map { 2 * $0 - 1 } : t
            return mean { let m = max(1 - s[$0] * p[$0], 0); return cfg.name == "hinge" ? m : m * m }
        case "categorical_hinge":
            let pos = sum { t[$0] * p[$0] }
            let neg = idx.map { (1 - t[$0]) * p[$0] }.max()!
            return max(neg - pos + 1, 0)
        case "binary_crossentropy":
            if ls > 0 { t = t.map { $0 * (1 - ls) + 0.5 * ls } }
            if cfg.fromLogits {
                return mean { -(t[$0] * log(sigmoid(p[$0])) + (1 - t[$0]) * log(1 - sigmoid(p[$0]))) }
            }
            return mean { let q = clip(p[$0], eps, 1 - eps); return -(t[$0] * log(q) + (1 - t[$0]) * log(1 - q)) }
        case "categorical_crossentropy", "sparse_categorical_crossentropy":
            if cfg.name.hasPrefix("sparse") { t = idx.map { $0 == Int(t0[0]) ? 1 : 0 } }
            if ls > 0 { t = t.map { $0 * (1 - ls) + ls / Double(k) } }
            if cfg.fromLogits {
                let lse = log(sum { exp(p[$0]) })
                return -sum { t[$0] * (p[$0] - lse) }
            }
            let total = sum { p[$0] }
            return -sum { t[$0] * log(clip(p[$0] / total, eps, 1 - eps)) }
        case "log_cosh": return mean { log(cosh(p[$0] - t[$0])) }
        case "kl_divergence":
            return sum { let (a, b) = (clip(t[$0], eps, 1), clip(p[$0], eps, 1)); return a * log(a / b) }
        case "poisson": return mean { p[$0] - t[$0] * log(p[$0] + eps) }
        case "cosine_similarity":
            let nt = sum { t[$0] * t[$0] }.squareRoot(), np = sum { p[$0] * p[$0] }.squareRoot()
            return -sum { t[$0] * p[$0] } / (nt * np)
        default: fatalError(cfg.name)
        }
    }

    // MARK: the cases

    /// (config, targets, predictions) for N = 3 rows of K = 4.
    static func cases() -> [(LossConfig, [Double], [Double])] {
        var rng = RNG(21)
        let n = 3, k = 4, c = n * k
        func oneHot(_ ids: [Int]) -> [Double] { ids.flatMap { id in (0..<k).map { $0 == id ? 1.0 : 0.0 } } }
        func bits() -> [Double] { (0..<c).map { _ in Double(rng.next() & 1) } }
        func soft() -> [Double] { rng.uniforms(c, 0.05, 0.95) }
        func probs() -> [Double] { rng.uniforms(c, 0.05, 0.95) }
        let hingeP = rng.signed(c, 0.2, 0.8)
        let ids = [2, 0, 3]
        var out: [(LossConfig, [Double], [Double])] = [
            (LossConfig(name: "mean_squared_error"), rng.uniforms(c, -2, 2), rng.uniforms(c, -2, 2)),
            (LossConfig(name: "mean_absolute_error"), rng.uniforms(c, -2, 2), rng.uniforms(c, -2, 2)),
            (LossConfig(name: "mean_absolute_percentage_error"), rng.signed(c, 0.2, 2), rng.uniforms(c, -2, 2)),
            (LossConfig(name: "mean_squared_logarithmic_error"), rng.uniforms(c, -0.5, 2), rng.uniforms(c, 0.1, 2)),
            (LossConfig(name: "hinge"), bits(), hingeP),
            (LossConfig(name: "hinge"), bits().map { 2 * $0 - 1 }, hingeP),
            (LossConfig(name: "squared_hinge"), bits(), hingeP),
            (LossConfig(name: "squared_hinge"), bits().map { 2 * $0 - 1 }, rng.signed(c, 1.2, 2)),
            (LossConfig(name: "categorical_hinge"), oneHot(ids), rng.uniforms(c, -1, 1)),
            (LossConfig(name: "log_cosh"), rng.uniforms(c, -2, 2), rng.uniforms(c, -2, 2)),
            (LossConfig(name: "kl_divergence"), soft(), probs()),
            (LossConfig(name: "poisson"), rng.uniforms(c, 0, 3), rng.uniforms(c, 0.1, 3)),
            (LossConfig(name: "cosine_similarity"), rng.uniforms(c, -2, 2), rng.uniforms(c, -2, 2)),
        ]
        for logits in [false, true] {
            for smooth: Float in [0, 0.1] {
                let p = logits ? rng.uniforms(c, -3, 3) : probs()
                out.append((LossConfig(name: "binary_crossentropy", fromLogits: logits, labelSmoothing: smooth), bits(), p))
                out.append((LossConfig(name: "binary_crossentropy", fromLogits: logits, labelSmoothing: smooth), soft(), p))
                out.append((LossConfig(name: "categorical_crossentropy", fromLogits: logits, labelSmoothing: smooth), oneHot(ids), p))
            }
            let p = logits ? rng.uniforms(c, -3, 3) : probs()
            out.append((LossConfig(name: "categorical_crossentropy", fromLogits: logits), soft(), p))
            out.append((LossConfig(name: "sparse_categorical_crossentropy", fromLogits: logits), ids.map(Double.init), p))
        }
        return out
    }

    func testLossValues() throws {
        let (n, k) = (3, 4)
        for (cfg, t, p) in Self.cases() {
            let what = "\(cfg.name) logits=\(cfg.fromLogits) ls=\(cfg.labelSmoothing)"
            var g = Graph(name: "loss")
            let pred = g.addInput("y_pred", .f32([.n, .fixed(k)]))
            let tv = g.addInput("y_true", Losses.targetType(cfg, output: g.type(pred)))
            var b = PrimBuilder(graph: g, layer: "loss")
            let per = try Losses.perSample(cfg, yTrue: tv, yPred: pred, &b)
            XCTAssertEqual(b.type(per).shape, [.n], what)
            try b.graph.verify()
            let vals = try Interpreter.run(b.graph, inputs: [p, t], n: n)[per]!
            let tk = t.count / n
            let allBinary = t.allSatisfy { $0 == 0 || $0 == 1 }
            let want = (0..<n).map { r in
                Self.reference(cfg, Array(t[r * tk..<(r + 1) * tk]), Array(p[r * k..<(r + 1) * k]), allBinary: allBinary)
            }
            assertClose(vals, want, rtol: 1e-6, atol: 1e-7, what)
        }
    }

    func testLossGradients() throws {
        let k = 4
        for (i, (cfg, t, p)) in Self.cases().enumerated() {
            let tt = Losses.targetType(cfg, output: .f32([.n, .fixed(k)]))
            try checkGradient("loss\(i)_\(cfg.name)", n: 3, [.input(.f32([.n, .fixed(k)]), p), .input(tt, t, differentiable: false)]) { b, v in
                try Losses.perSample(cfg, yTrue: v[1], yPred: v[0], &b)
            }
        }
    }
}

final class OptimizerTests: XCTestCase {
    /// Keras 3's update rules (keras/src/optimizers/*.py), one element at a time.
    /// `state` maps "weight/slot" (and "u_product") to the slot values; missing slots start at their Keras initial value.
    static func kerasStep(_ cfg: OptimizerConfig, weights: [String: [Double]], grads g0: [String: [Double]],
                          state: inout [String: [Double]], t: Double) -> [String: [Double]] {
        let names = weights.keys.sorted()
        var grads = g0
        func norm(_ v: [Double]) -> Double { v.map { $0 * $0 }.reduce(0, +).squareRoot() }
        if let c = cfg.clipnorm.map(Double.init), c > 0 {
            for k in names { let nrm = norm(grads[k]!); grads[k] = grads[k]!.map { $0 * c / max(nrm, c) } }
        } else if let c = cfg.globalClipnorm.map(Double.init), c > 0 {
            let nrm = names.map { norm(grads[$0]!) }.map { $0 * $0 }.reduce(0, +).squareRoot()
            let scale = c * min(1 / nrm, f(1 / c))  // Keras: 1.0 / clip_norm in Python, then float32
            for k in names { grads[k] = grads[k]!.map { $0 * scale } }
        } else if let v = cfg.clipvalue.map(Double.init), v > 0 {
            for k in names { grads[k] = grads[k]!.map { min(max($0, -v), v) } }
        }
        let lr = Double(cfg.learningRate)
        var weights = weights
        if let wd = cfg.weightDecay.map(Double.init), wd != 0 {
            for k in names { weights[k] = weights[k]!.map { $0 - $0 * wd * lr } }
        }
        func s(_ key: String, _ fallback: Double) -> Double { Double(cfg.setting(key, Float(fallback))) }
        if cfg.name == "Nadam" {
            let u = s("beta_1", 0.9) * (1 - 0.5 * pow(f(0.96), t))
            state["u_product"] = [(state["u_product"]?[0] ?? 1) * u]
        }
        var out: [String: [Double]] = [:]
        for name in names {
            let (w, g) = (weights[name]!, grads[name]!)
            func slot(_ suffix: String, _ initial: Double = 0) -> [Double] {
                state[name + "/" + suffix] ?? [Double](repeating: initial, count: w.count)
            }
            var neww = w
            var upd: [String: [Double]] = [:]
            for i in w.indices {
                func S(_ suffix: String, _ initial: Double = 0) -> Double { slot(suffix, initial)[i] }
                func set(_ suffix: String, _ v: Double) {
                    upd[suffix, default: [Double](repeating: 0, count: w.count)][i] = v
                }
                let gi = g[i]
                switch cfg.name == "AdamW" ? "Adam" : cfg.name {
                case "SGD":
                    let mom = s("momentum", 0)
                    if mom == 0 { neww[i] = w[i] - gi * lr; break }
                    let m = S("momentum") * mom - gi * lr
                    set("momentum", m)
                    neww[i] = cfg.flag("nesterov") ? w[i] + (m * mom - gi * lr) : w[i] + m
                case "RMSprop":
                    let (rho, e, mom) = (s("rho", 0.9), s("epsilon", 1e-7), s("momentum", 0))
                    let v = rho * S("velocity") + (1 - rho) * gi * gi
                    set("velocity", v)
                    var denom = v + e
                    if cfg.flag("centered") {
                        let a = rho * S("average_gradient") + (1 - rho) * gi
                        set("average_gradient", a)
                        denom = v - a * a + e
                    }
                    let inc = lr * gi / denom.squareRoot()
                    if mom > 0 {
                        let m = mom * S("momentum") + inc
                        set("momentum", m); neww[i] = w[i] - m
                    } else { neww[i] = w[i] - inc }
                case "Adagrad":
                    let acc = S("accumulator", s("initial_accumulator_value", 0.1)) + gi * gi
                    set("accumulator", acc)
                    neww[i] = w[i] - lr * gi / (acc + s("epsilon", 1e-7)).squareRoot()
                case "Adadelta":
                    let (rho, e) = (s("rho", 0.95), s("epsilon", 1e-7))
                    let ag = rho * S("accumulated_grad") + (1 - rho) * gi * gi
                    let delta = -(S("accumulated_delta_var") + e).squareRoot() * gi / (ag + e).squareRoot()
                    set("accumulated_grad", ag)
                    set("accumulated_delta_var", rho * S("accumulated_delta_var") + (1 - rho) * delta * delta)
                    neww[i] = w[i] + lr * delta
                case "Adam":
                    let (b1, b2, e) = (s("beta_1", 0.9), s("beta_2", 0.999), s("epsilon", 1e-7))
                    let alpha = lr * (1 - pow(b2, t)).squareRoot() / (1 - pow(b1, t))
                    let m = S("momentum") + (gi - S("momentum")) * (1 - b1)
                    var v = S("velocity") + (gi * gi - S("velocity")) * (1 - b2)
                    set("momentum", m); set("velocity", v)
                    if cfg.flag("amsgrad") { v = max(S("velocity_hat"), v); set("velocity_hat", v) }
                    neww[i] = w[i] - m * alpha / (v.squareRoot() + e)
                case "Adamax":
                    let (b1, b2, e) = (s("beta_1", 0.9), s("beta_2", 0.999), s("epsilon", 1e-7))
                    let m = S("m") + (gi - S("m")) * (1 - b1)
                    let u = max(b2 * S("u"), abs(gi))
                    set("m", m); set("u", u)
                    neww[i] = w[i] - lr * m / ((1 - pow(b1, t)) * (u + e))
                case "Nadam":
                    let (b1, b2, e) = (s("beta_1", 0.9), s("beta_2", 0.999), s("epsilon", 1e-7))
                    let ut = b1 * (1 - 0.5 * pow(f(0.96), t)), ut1 = b1 * (1 - 0.5 * pow(f(0.96), t + 1))
                    let prod = state["u_product"]![0], prod1 = prod * ut1
                    let m = S("momentum") + (gi - S("momentum")) * (1 - b1)
                    let v = S("velocity") + (gi * gi - S("velocity")) * (1 - b2)
                    set("momentum", m); set("velocity", v)
                    let mHat = ut1 * m / (1 - prod1) + (1 - ut) * gi / (1 - prod)
                    let vHat = v / (1 - pow(b2, t))
                    neww[i] = w[i] - mHat * lr / (vHat.squareRoot() + e)
                default: fatalError(cfg.name)
                }
            }
            for (k, v) in upd { state[name + "/" + k] = v }
            out[name] = neww
        }
        return out
    }

    static let configs: [OptimizerConfig] = [
        OptimizerConfig(name: "SGD", learningRate: 0.1),
        OptimizerConfig(name: "SGD", learningRate: 0.05, settings: ["momentum": 0.9]),
        OptimizerConfig(name: "SGD", learningRate: 0.05, settings: ["momentum": 0.8], flags: ["nesterov": true]),
        OptimizerConfig(name: "RMSprop", learningRate: 0.01),
        OptimizerConfig(name: "RMSprop", learningRate: 0.01, settings: ["rho": 0.8, "epsilon": 1e-6], flags: ["centered": true]),
        OptimizerConfig(name: "RMSprop", learningRate: 0.01, settings: ["momentum": 0.5]),
        OptimizerConfig(name: "RMSprop", learningRate: 0.01, settings: ["momentum": 0.5], flags: ["centered": true]),
        OptimizerConfig(name: "Adagrad", learningRate: 0.1),
        OptimizerConfig(name: "Adagrad", learningRate: 0.1, settings: ["initial_accumulator_value": 0.25, "epsilon": 1e-5]),
        OptimizerConfig(name: "Adadelta", learningRate: 1.0),
        OptimizerConfig(name: "Adadelta", learningRate: 0.5, settings: ["rho": 0.9, "epsilon": 1e-6]),
        OptimizerConfig(name: "Adam", learningRate: 0.001),
        OptimizerConfig(name: "Adam", learningRate: 0.01, settings: ["beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6]),
        OptimizerConfig(name: "Adam", learningRate: 0.01, flags: ["amsgrad": true]),
        OptimizerConfig(name: "Adamax", learningRate: 0.002),
        OptimizerConfig(name: "Adamax", learningRate: 0.01, settings: ["beta_1": 0.7, "beta_2": 0.95]),
        OptimizerConfig(name: "Nadam", learningRate: 0.002),
        OptimizerConfig(name: "Nadam", learningRate: 0.01, settings: ["beta_1": 0.8, "beta_2": 0.99]),
        OptimizerConfig(name: "SGD", learningRate: 0.1, clipnorm: 0.5),
        OptimizerConfig(name: "SGD", learningRate: 0.1, clipnorm: 100),
        OptimizerConfig(name: "Adam", learningRate: 0.01, clipnorm: 0.5),
        OptimizerConfig(name: "SGD", learningRate: 0.1, clipvalue: 0.3),
        OptimizerConfig(name: "RMSprop", learningRate: 0.01, clipvalue: 0.3),
        OptimizerConfig(name: "SGD", learningRate: 0.1, globalClipnorm: 0.5),
        OptimizerConfig(name: "SGD", learningRate: 0.1, globalClipnorm: 100),
        OptimizerConfig(name: "Adam", learningRate: 0.01, globalClipnorm: 0.5),
        // Keras applies the first set of clipnorm, global_clipnorm, clipvalue.
        OptimizerConfig(name: "SGD", learningRate: 0.1, clipnorm: 0.5, clipvalue: 0.01, globalClipnorm: 0.1),
        // Decoupled weight decay (w -= w * wd * lr first), and AdamW.
        decayed(OptimizerConfig(name: "SGD", learningRate: 0.1, settings: ["momentum": 0.9]), 0.05),
        decayed(OptimizerConfig(name: "RMSprop", learningRate: 0.01), 0.05),
        decayed(OptimizerConfig(name: "Adam", learningRate: 0.01, clipnorm: 0.5), 0.1),
        decayed(OptimizerConfig(name: "AdamW", learningRate: 0.01), 0.004),
        decayed(OptimizerConfig(name: "AdamW", learningRate: 0.01, flags: ["amsgrad": true]), 0.004),
        decayed(OptimizerConfig(name: "Nadam", learningRate: 0.01), 0.05),
    ]

    static func decayed(_ c: OptimizerConfig, _ wd: Float) -> OptimizerConfig {
        var c = c
        c.weightDecay = wd
        return c
    }

    /// Random slot state for a later step (second moments positive, centered RMSprop well defined).
    static func randomSlot(_ suffix: String, _ count: Int, _ rng: inout RNG) -> [Double] {
        switch suffix {
        case "momentum", "m": return rng.uniforms(count, -0.3, 0.3)
        case "average_gradient": return rng.uniforms(count, -0.05, 0.05)
        case "u_product": return [0.6]
        default: return rng.uniforms(count, 0.01, 0.5)
        }
    }

    func runStep(_ cfg: OptimizerConfig, iteration: Int, randomState: Bool, seed: UInt64) throws {
        var rng = RNG(seed)
        let what = "\(cfg) t=\(iteration)"
        var g = Graph(name: "opt")
        let shapes: [String: [Int]] = ["dense/kernel": [2, 3], "dense/bias": [3]]
        let names = shapes.keys.sorted()
        var wv: [Value] = [], gv: [Value] = []
        var weights: [String: [Double]] = [:], grads: [String: [Double]] = [:]
        for name in names {
            let t = TensorType.f32(shapes[name]!.map { .fixed($0) })
            let w = rng.uniforms(t.staticCount).map { Float($0) }
            wv.append(g.addParam(name, t, initial: w))
            gv.append(g.addInput("grad_" + name, t))
            weights[name] = w.map(Double.init)
            grads[name] = rng.uniforms(t.staticCount, -2, 2)
        }
        var b = PrimBuilder(graph: g, layer: "opt")
        let assigns = try Optimizers.update(cfg, params: wv, grads: gv, &b)
        for (p, v) in assigns { try b.graph.add(.prim(.assign), [p, v], layer: "optimizer") }
        try b.graph.verify()

        var state: [String: [Double]] = [:]
        var params: [[Double]] = []
        for p in b.graph.params {
            if p.role == .slot {
                let key = String(p.name.dropFirst("optimizer/".count))
                let v = randomState ? Self.randomSlot(String(key.split(separator: "/").last!), p.type.staticCount, &rng)
                                    : p.initial.map(Double.init)
                if randomState { state[key] = v }
                params.append(v)
            } else {
                params.append(weights[p.name]!)
            }
        }
        let initialSlots = Set(b.graph.params.filter { $0.role == .slot }.map { String($0.name.dropFirst("optimizer/".count)) })
        let r = try Interpreter.evaluate(b.graph, inputs: names.map { grads[$0]! }, params: params, n: 1, iteration: iteration)
        let want = Self.kerasStep(cfg, weights: weights, grads: grads, state: &state, t: Double(iteration))
        // The slots are Keras's, by name, and each is written once.
        XCTAssertEqual(initialSlots, Set(state.keys), "\(what): slot variables")
        XCTAssertEqual(assigns.count, Set(assigns.map(\.0)).count, "\(what): a state is assigned twice")
        for p in b.graph.params {
            guard let got = r.assigned[p.value] else {
                XCTFail("\(what): \(p.name) is never assigned"); continue
            }
            let expected = p.role == .slot ? state[String(p.name.dropFirst("optimizer/".count))]! : want[p.name]!
            assertClose(got, expected, rtol: 1e-9, atol: 1e-12, "\(what): \(p.name)")
        }
    }

    func testFirstStep() throws {
        for (k, cfg) in Self.configs.enumerated() { try runStep(cfg, iteration: 1, randomState: false, seed: UInt64(100 + k)) }
    }

    func testLaterStepWithState() throws {
        for (k, cfg) in Self.configs.enumerated() { try runStep(cfg, iteration: 4, randomState: true, seed: UInt64(200 + k)) }
    }
}
