import KilnIR

/// Builds the training-step and evaluation graphs from the lowered graph (Pipeline.lowering):
/// forward (its training form: dropout on) -> loss -> autodiff -> optimizer update -> assigns;
/// forward (its inference form, predict's) -> loss for evaluation.
public enum TrainingBuilder {
    public static let enabled = true

    public struct Result {
        public var graph: Graph
        public var loss: Value
        /// One target per model output: name and type.
        public var targets: [(String, TensorType)]
        /// Metric values (batch means) and their Keras history names.
        public var metrics: [Value] = []
        public var metricNames: [String] = []
    }

    /// - Parameters:
    ///   - layers: the layer graph (checked for what Kiln cannot train).
    ///   - lowered: the same graph after Pipeline.lowering.
    ///   - inferred: `lowered` after Pipeline.inferenceForm, as predict has it.
    public static func build(layers: Graph, lowered: Graph, inferred: Graph, _ cfg: TrainingConfig, unroll: UnrollPolicy = .auto,
                             observe: (String, Graph) -> Void = { _, _ in }) throws -> (train: Result, evaluate: Result) {
        for n in layers.nodes {
            guard case .layer(.table(let t)) = n.op, let why = t.kind.trainingRefusal else { continue }
            throw ShapeError(layer: n.layer, why)
        }
        let train = try step(try Pipeline.run(Pipeline.trainingForm(unroll: unroll), lowered), cfg, training: true, observe: observe)
        let eval = try step(inferred, cfg, training: false, observe: { _, _ in })
        return (train, eval)
    }

    /// The loss (and for training the update) on top of a forward graph in the right form.
    static func step(_ lowered: Graph, _ cfg: TrainingConfig, training: Bool, observe: (String, Graph) -> Void) throws -> Result {
        var b = PrimBuilder(graph: lowered, layer: "loss")
        var targets: [(String, TensorType)] = []
        var total: Value? = nil
        var metrics: [Value] = [], metricNames: [String] = []
        try Losses.checkCRFs(lowered, cfg)
        for (k, out) in lowered.outputs.enumerated() {
            let lc = cfg.losses[k]
            let tt = Losses.targetType(lc, output: b.type(out))
            let name = "target_" + lowered.outputNames[k]
            let t = b.graph.addInput(name, tt)
            targets.append((name, tt))
            b.layer = "loss/" + lowered.outputNames[k]
            let per = try Losses.perSample(lc, yTrue: t, yPred: out, &b)
            var l: Value
            if k < lowered.outputMasks.count, let mask = lowered.outputMasks[k], b.type(mask).shape == b.type(per).shape {
                // Masked steps weigh nothing: the sum over unmasked steps over their number.
                let m = try b.cast(mask, .f32)
                let all = Array(0..<b.type(per).rank)
                let count = try b.binary(.max, try b.reduce(.sum, m, axes: all), try b.const(1))
                l = try b.div(try b.reduce(.sum, try b.mul(per, m), axes: all), count)
            } else {
                l = try b.reduce(.mean, per, axes: Array(0..<b.type(per).rank))
            }
            if lowered.outputs.count > 1 {
                // Keras reports each output's loss too, as "<output>_loss".
                metrics.append(l)
                metricNames.append(lowered.outputNames[k] + "_loss")
            }
            if let w = cfg.lossWeights, k < w.count, w[k] != 1 { l = try b.mul(l, w[k]) }
            total = try total.map { try b.add($0, l) } ?? l
            for m in cfg.metrics {
                let prefix = lowered.outputs.count > 1 ? lowered.outputNames[k] + "_" : ""
                metrics.append(try Metrics.value(m, yTrue: t, yPred: out, &b))
                metricNames.append(prefix + m)
            }
        }
        guard var loss = total else { throw ShapeError(layer: lowered.name, "the model has no outputs to train") }
        // Keras adds the layers' losses (activity regularization) and the weight regularizers'
        // penalties of the trainable weights to the loss it minimises and reports.
        b.layer = "regularization"
        for term in b.graph.lossTerms { loss = try b.add(loss, term) }
        for p in b.graph.params where p.trainable && p.role == .weight {
            if let r = p.regularizer, let penalty = try r.penalty(p.value, &b) { loss = try b.add(loss, penalty) }
        }
        b.graph.lossTerms = []
        if training {
            let trainable = b.graph.params.filter { $0.trainable && $0.role == .weight }.map(\.value)
            let grads = try differentiate(&b, loss: loss, wrt: trainable)
            var pairs: [(Value, Value)] = []
            for (w, gr) in zip(trainable, grads) {
                // A weight the loss does not reach gets a zero gradient, as in Keras.
                pairs.append((w, try gr ?? b.mul(w, 0)))
            }
            var assigns = try Optimizers.update(cfg.optimizer, params: pairs.map(\.0), grads: pairs.map(\.1), &b)
            // Keras applies a weight's constraint to it after the optimizer's update.
            b.layer = "constraint"
            for k in assigns.indices {
                if let c = b.graph.param(assigns[k].0).flatMap({ $0.role == .weight ? $0.constraint : nil }) {
                    assigns[k].1 = try c.apply(assigns[k].1, &b)
                }
            }
            // The layers' own state writes (BatchNormalization's moving statistics), from this step's forward pass.
            let updates = b.graph.stateUpdates.map { ($0.param, $0.value) }
            b.graph.stateUpdates = []
            // All state writes come last, after every read of the old state.
            b.layer = "optimizer"
            for (p, v) in assigns { try b.graph.add(.prim(.assign), [p, v], layer: "optimizer") }
            b.layer = "state"
            for (p, v) in updates { try b.graph.add(.prim(.assign), [p, v], layer: "state") }
        }
        b.graph.outputs = [loss] + metrics
        b.graph.outputNames = ["loss"] + metricNames
        observe(training ? "autodiff" : "evaluate", b.graph)
        let optimized = try Pipeline.run(Pipeline.optimizations, b.graph) { name, gr in
            observe("train-" + name, gr)
        }
        // Passes may renumber values: the loss and metrics are the optimized graph's outputs.
        return Result(graph: optimized, loss: optimized.outputs[0], targets: targets, metrics: Array(optimized.outputs.dropFirst()),
                      metricNames: metricNames)
    }
}
