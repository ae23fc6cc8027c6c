import KilnIR

// The CRF loss: the negative log-likelihood of the target tags under the CRF layer that produces
// an output, computed from the CRF's inputs (emission scores, weights, mask), not from its
// Viterbi tags. Lowering makes a CRF layer one crf_viterbi node (Lowering.swift); the loss finds
// it as the producer of the output and applies crf_nll to the same inputs and the targets:
//   // tags = crf_viterbi(e, A, s, f, m)   ->   loss = mean(crf_nll(e, A, s, f, y_true, m))
// so the training step and evaluation each read the emissions of their own form (dropout on or
// off), and autodiff takes the gradient to the emissions and the three weights (Ops/CRF.swift).

extension Losses {
    /// The crf_viterbi node that produces `out` (a CRF layer's output), if one does.
    public static func crfProducer(_ out: Value, in g: Graph) -> Node? {
        guard let n = g.producer(out), case .prim(.crfViterbi) = n.op, n.outputs[0] == out else { return nil }
        return n
    }

    /// The per-sample loss (N,): the NLL of the tags y_true under the CRF producing y_pred.
    static func crf(yTrue t: Value, yPred p: Value, _ b: inout PrimBuilder) throws -> Value {
        guard let node = crfProducer(p, in: b.graph) else {
            throw ShapeError(layer: b.layer, "the CRF loss needs the output of a CRF layer")
        }
        // crf_viterbi(e, A, s, f, [m]) -> crf_nll(e, A, s, f, y, [m])
        let ins = Array(node.inputs.prefix(4)) + [t] + Array(node.inputs.dropFirst(4))
        return try b.graph.add(.prim(.crfNLL), ins, layer: b.layer)[0]
    }

    /// Refuses what the CRF loss cannot train, each with one sentence: a CRF layer that is not
    /// (only) a model output, the CRF loss on an output no CRF produces (or not the CRF it names),
    /// another loss or a metric on a CRF's output.
    public static func checkCRFs(_ g: Graph, _ cfg: TrainingConfig) throws {
        let crfs = g.nodes.filter { if case .prim(.crfViterbi) = $0.op { return true } else { return false } }
        for c in crfs {
            let out = c.outputs[0]
            let consumers = g.nodes.filter { $0.inputs.contains(out) }.map(\.layer)
            if !g.outputs.contains(out) || !consumers.isEmpty {
                throw ShapeError(layer: "CRF '\(c.layer)'", consumers.isEmpty ? "does not produce a model output"
                                    : "feeds layer '\(consumers[0])'",
                                 hint: "Kiln trains a CRF only as a model output, with the CRF loss (kiln_crf.CRFLoss)")
            }
        }
        for (k, out) in g.outputs.enumerated() where k < cfg.losses.count {
            let (loss, name) = (cfg.losses[k], g.outputNames[k])
            let crf = crfProducer(out, in: g)
            guard loss.name == "crf" else {
                if let crf {
                    throw ShapeError(layer: "loss", "output '\(name)' is the tags of CRF '\(crf.layer)', which trains with the CRF loss, not '\(loss.name)'",
                                     hint: "use kiln_crf.CRFLoss(crf) in Keras, the loss \"crf\" in the Swift API or --loss crf")
                }
                continue
            }
            if let wanted = loss.crfLayer, crf?.layer != wanted {
                if let named = crfs.first(where: { $0.layer == wanted }), let j = g.outputs.firstIndex(of: named.outputs[0]) {
                    throw ShapeError(layer: "loss", "the CRF loss of output '\(name)' names CRF '\(wanted)', which produces output '\(g.outputNames[j])'")
                }
                throw ShapeError(layer: "loss", "the CRF loss of output '\(name)' names layer '\(wanted)', which is not a CRF layer of the model")
            }
            guard let crf else {
                throw ShapeError(layer: "loss", "the CRF loss of output '\(name)' needs a CRF layer there, but the output comes from "
                                    + (g.producer(out).map { "layer '\($0.layer)'" } ?? "the input"),
                                 hint: "put kiln_crf.CRF() last, on the emission scores (batch, steps, tags)")
            }
            if let m = cfg.metrics.first {
                throw ShapeError(layer: "loss", "metric '\(m)' is not supported on output '\(name)', the tags of CRF '\(crf.layer)'",
                                 hint: "compile without metrics")
            }
        }
    }
}
