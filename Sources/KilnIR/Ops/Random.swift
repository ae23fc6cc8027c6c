// Random draws: randomUniform(salt) gives uniform [0, 1) numbers of its input's
// type, a counter-based function of (step seed, salt, element index), so a draw
// needs no state and every thread can compute any element.

import KilnSupport

public enum Random: PrimitiveFamily {
    public static func infer(_ op: PrimOp, _ ins: [TensorType], layer: String) throws -> [TensorType] {
        try expectArity(ins, 1...1, layer)
        return [.f32(ins[0].shape)]
    }

    public static func gradient(_ op: PrimOp, _ n: Node, _ dys: [Value?], _ b: inout PrimBuilder) throws -> [Value?] {
        [nil]
    }

    public static func evaluate(_ op: PrimOp, _ n: Node, _ ins: [Tensor], _ outDims: [[Int]], _ ctx: inout EvalContext) throws -> [[Double]] {
        guard case .randomUniform(let salt) = op else { notInFamily(op, Self.self) }
        return [(0..<outDims[0].reduce(1, *)).map { Double(uniform(stepSeed: ctx.stepSeed, salt: salt, index: $0)) }]
    }

    public static func kernel(_ op: PrimOp, _ n: Node, in g: Graph) -> [Step] {
        guard case .randomUniform(let salt) = op else { notInFamily(op, Self.self) }
        let out = g.type(n.outputs[0])
        let k = LoopKernel(buffers: kernelBuffers(n, in: g), loops: [elementCount(out)], body: .random(salt: salt, at: .index(0)),
                           output: 1, outputIndex: .index(0))
        return [.loop(k, args: n.inputs + n.outputs)]
    }

    public static func describe(_ op: PrimOp) -> String {
        guard case .randomUniform(let salt) = op else { notInFamily(op, Self.self) }
        return "random_uniform<\(salt)>"
    }

    public static func fusedForm(_ op: PrimOp) -> FusedExpr? { nil }

    /// Never merged: two draws are two draws, whatever their inputs. An unused draw may go:
    /// draws are counter-based, so removing one changes no other number.
    public static func effects(_ op: PrimOp) -> PrimEffects { PrimEffects(mergeable: false, removable: true) }

    /// Element `index` of the draw with this salt: splitmix64's finalizer over
    /// stepSeed + index·0xD1B54A32D192ED03 + salt·0x9E3779B97F4A7C15 (wrapping), whose top
    /// 24 bits scaled by 2⁻²⁴ give a float in [0, 1). The kernel (`KExpr.random`, emitted by
    /// KernelEmitter.random) computes the same function.
    public static func uniform(stepSeed: UInt64, salt: Int, index: Int) -> Float {
        var x = stepSeed &+ UInt64(bitPattern: Int64(index)) &* 0xD1B5_4A32_D192_ED03
        x = x &+ UInt64(bitPattern: Int64(salt)) &* 0x9E37_79B9_7F4A_7C15
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 31
        return Float(x >> 40) * (1.0 / 16_777_216.0)
    }

    /// The seed of a training step's draws, as the runtime derives it (kiln_step_seed in
    /// Runtime/kiln_runtime.c) from the instance's seed and the number of steps taken before:
    /// mix(mix(seed) ^ iteration), mix being one splitmix64 step from that state.
    public static func stepSeed(seed: UInt64, iteration: Int) -> UInt64 {
        func mix(_ z: UInt64) -> UInt64 { var s = SplitMix64(state: z); return s.next() }
        return mix(mix(seed) ^ UInt64(bitPattern: Int64(iteration)))
    }
}
