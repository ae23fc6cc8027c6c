import KilnIR

/// The pass pipelines, in order. `kiln compile --print-after NAME` prints the
/// graph after the pass of that name. The layer graph is lowered once (`lowering`,
/// in the training form); predict takes its `inferenceForm`, the training step its
/// `trainingForm` and the evaluation step its `inferenceForm` (TrainingBuilder adds
/// the loss, and for training autodiff and the optimizer update); each program then
/// runs `optimizations`, and the schedule and the epilogue folding follow
/// (Planner.swift), with one state layout for all (StateLayout).
public enum Pipeline {
    /// Inference: what `NAME__predict` runs, from the layer graph.
    public static let predict: [Pass] = predict(unroll: .auto)

    public static func predict(unroll: UnrollPolicy) -> [Pass] { lowering + inferenceForm(unroll: unroll) + optimizations }

    /// From the layer graph to primitives, once for every program.
    public static let lowering: [Pass] = [
        verify,                     // structural and shape checks on the layer graph
        propagateMasks,             // Embedding(mask_zero) / Masking masks -> recurrent layers, outputs
        lowerLayers,                // layers -> primitives (recurrent layers -> recording scans); dropout draws its mask
    ]

    /// Predict and evaluate, from the lowered graph.
    public static func inferenceForm(unroll: UnrollPolicy) -> [Pass] { [
        inference,                  // dropout -> identity, scans record nothing, what is unused goes
        unrollScans(unroll),        // scans -> straight-line cells where the policy says so
    ] }

    /// The training step, from the lowered graph.
    public static func trainingForm(unroll: UnrollPolicy) -> [Pass] { [unrollScans(unroll)] }

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

/// The inference form of a lowered graph: each value with an inference form
/// (Graph.inferenceForms) is replaced by it, scans stop recording what only their
/// gradient needs, and what no output needs any more (a dropout's draw) goes.
///   // y = x * (u >= rate) / (1 - rate); z = f(y)   ->   z = f(x)
///   // scan<lstm, records>(...)                      ->   scan<lstm>(...)
public let inference = Pass("inference") { g in
    func form(_ v: Value) -> Value {
        var v = v
        while let w = g.inferenceForms[v] { v = w }
        return v
    }
    var r = GraphRebuilder(g)
    r.old.outputs = g.outputs.map(form)
    r.old.outputMasks = g.outputMasks.map { $0.map(form) }
    // Inference writes no state (BatchNormalization uses its moving statistics there) but a
    // stateful layer's carried state; the loss terms stay, for evaluation.
    r.old.stateUpdates = g.stateUpdates.filter(\.inference).map { StateUpdate(param: form($0.param), value: form($0.value), inference: true) }
    r.old.lossTerms = g.lossTerms.map(form)
    var out = try r.run { r, n in
        var n = n
        n.inputs = n.inputs.map(form)
        if case .prim(.scan(var cell)) = n.op, cell.records {
            // The records are the last outputs; only a gradient reads them.
            cell.records = false
            return try r.new.add(.prim(.scan(cell)), n.inputs.map { r[$0] }, layer: n.layer)
        }
        return try r.copy(n)
    }
    out.inferenceForms = [:]
    return try deadCode.run(out)
}

/// Checks the graph's invariants (topological order, types).
public let verify = Pass("verify") { g in
    try g.verify()
    return g
}
