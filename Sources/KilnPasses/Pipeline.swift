import KilnIR

/// The pass pipelines, in order. `kiln compile --print-after NAME` prints the
/// graph after the pass of that name. Every program runs `lowering`, then (the
/// training and evaluation steps: TrainingBuilder) the loss, autodiff and the
/// optimizer update, then `optimizations`; the schedule and the epilogue
/// folding follow (Planner.swift).
public enum Pipeline {
    /// Inference: what `NAME__predict` runs.
    public static let predict: [Pass] = predict(unroll: .auto)

    public static func predict(unroll: UnrollPolicy) -> [Pass] { lowering(training: false, unroll: unroll) + optimizations }

    /// From the layer graph to primitives.
    public static func lowering(training: Bool, unroll: UnrollPolicy) -> [Pass] { [
        verify,                     // structural and shape checks on the layer graph
        propagateMasks,             // Embedding(mask_zero) / Masking masks -> recurrent layers, outputs
        lowerLayers(training: training), // layers -> primitives (recurrent layers -> scans); dropout draws its mask in training
        unrollScans(unroll),        // scans -> straight-line cells where the policy says so
    ] }

    /// The rewrites every primitive graph ends with.
    public static let optimizations: [Pass] = [
        fuseConvBiasActivation,     // conv2d + bias |> activation -> one kernel
        fuseElementwise,            // chains of elementwise ops -> one loop each
        fuseConvBiasActivation,     // again: multi-op activations are one fused op now
        convToGemm,                 // convolutions -> im2col + sgemm (+ fused bias/activation)
        commonSubexpressions,       // compute each (op, inputs) once
        deadCode,                   // drop what no output needs
    ]

    /// Runs passes in order, handing each result to `observe` (for --print-after).
    public static func run(_ passes: [Pass], _ g: Graph, observe: (String, Graph) -> Void = { _, _ in }) throws -> Graph {
        var g = g
        for p in passes {
            g = try p.run(g)
            observe(p.name, g)
        }
        return g
    }
}

/// Checks the graph's invariants (topological order, types).
public let verify = Pass("verify") { g in
    try g.verify()
    return g
}
