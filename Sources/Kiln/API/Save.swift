// Saving a Swift-API model as a Keras 3 `.keras` file: the layers as Keras
// configs (Keras' class names, keys and defaults), the current weights and,
// after `compile`, the loss and optimizer as Keras' `compile_config`. The file
// is read back by `kiln compile` / `Compiler.load` and by Keras'
// `keras.saving.load_model`.

import Foundation
import KilnIR
import KilnLayers
import KilnKeras

extension KerasModel {
    /// Saves the model, with its current weights and its `compile` settings,
    /// as a Keras 3 `.keras` file, as Keras' `model.save(path)`. The file
    /// appears whole or not at all.
    /// - Parameters:
    ///   - path: the file to write (replaced when it exists), e.g. "model.keras".
    /// - Throws: ``KerasAPIError`` for a layer Kiln cannot save, or
    ///   `KerasSaveError` when the file cannot be written.
    public func save(_ path: String) throws {
        try KerasArchiveWriter.write(try kerasSpec(), to: path)
    }

    /// The model as the neutral form `.keras` files are read into: what
    /// ``save(_:)`` writes.
    public func kerasSpec() throws -> KerasModelSpec {
        pullFromLibrary()
        // Each call's index among its layer's calls in this model (Keras' node index).
        var nodeIndex: [ObjectIdentifier: Int] = [:]
        var callsOf: [ObjectIdentifier: [LayerNode]] = [:]
        for n in nodes {
            let lid = ObjectIdentifier(n.layer)
            nodeIndex[ObjectIdentifier(n)] = callsOf[lid, default: []].count
            callsOf[lid, default: []].append(n)
        }
        func ref(_ t: KerasTensor) -> KerasTensorRef {
            KerasTensorRef(layer: t.layer.name, nodeIndex: nodeIndex[ObjectIdentifier(t.node)] ?? 0, tensorIndex: t.index)
        }
        // h5 keys, as Keras gives them over `model.layers`.
        var used: [String: Int] = [:]
        var layers: [KerasLayerSpec] = []
        for l in operations {
            var key: String? = nil
            if !(isSequential && l is InputLayer) {
                let base = KerasArchive.snakeCase(l.className)
                if let n = used[base] { used[base] = n + 1; key = "\(base)_\(n + 1)" } else { used[base] = 0; key = base }
            }
            let weights = zip(l.weightShapes, l.weights).enumerated().map { i, sw in
                KerasWeight(path: "layers/\(key ?? "")/vars/\(i)", shape: sw.0, values: sw.1)
            }
            let calls = isSequential ? [] : (callsOf[ObjectIdentifier(l)] ?? []).map { KerasNodeCall(inputs: $0.inputs.map(ref)) }
            layers.append(KerasLayerSpec(className: l.className, name: l.name, config: try l.kerasConfig(),
                                         calls: calls, weights: weights))
        }
        return KerasModelSpec(kind: isSequential ? .sequential : .functional, name: name, layers: layers,
                              inputs: isSequential ? [] : inputs.map(ref), outputs: isSequential ? [] : outputs.map(ref),
                              compileConfig: training.map { withCRFNames($0).kerasCompileConfig() })
    }
}

extension KerasModel {
    /// The settings with each CRF loss naming its layer, as Keras' CRFLoss config does: the CRF
    /// that produces the output when the loss names none.
    func withCRFNames(_ t: TrainingConfig) -> TrainingConfig {
        var t = t
        for k in t.losses.indices where t.losses[k].name == "crf" && t.losses[k].crfLayer == nil && k < outputs.count {
            t.losses[k].crfLayer = outputs[k].layer.name
        }
        return t
    }
}

// MARK: - Layer configs

extension Layer {
    /// The layer's Keras config (keys in Keras' order, Keras' defaults for
    /// what Kiln does not model).
    func kerasConfig() throws -> JSON {
        if let kind {
            let trainableKey: [(String, JSON)] = kind.configHasTrainable ? [("trainable", .bool(trainable))] : []
            return .object([("name", .string(name))] + trainableKey + [("dtype", KerasJSON.dtypePolicy)] + kind.kerasConfig())
        }
        switch self {
        case let l as InputLayer:
            return .object([("batch_shape", .array([.null] + l.inputShape.map { .number(Double($0)) })),
                            ("dtype", .string(l.dtype == .int32 ? "int32" : "float32")), ("sparse", .bool(false)),
                            ("ragged", .bool(false)), ("name", .string(name)), ("optional", .bool(false))])
        default: break
        }
        throw KerasAPIError("layer '\(name)' (\(className)) cannot be saved as a Keras file yet.")
    }
}

// MARK: - compile_config

extension TrainingConfig {
    /// Keras' `compile_config` for these settings.
    func kerasCompileConfig() -> JSON {
        let lossJSON = losses.map { $0.kerasJSON() }
        let loss: JSON = lossJSON.isEmpty ? .null : (lossJSON.allSatisfy { $0 == lossJSON[0] } ? lossJSON[0] : .array(lossJSON))
        return .object([
            ("optimizer", optimizer.kerasJSON()),
            ("loss", loss),
            ("loss_weights", lossWeights.map { .array($0.map(KerasJSON.float)) } ?? .null),
            ("metrics", metrics.isEmpty ? .null : .array(metrics.map { .string($0) })),
            ("weighted_metrics", .null),
            ("run_eagerly", .bool(false)),
            ("steps_per_execution", .number(1)),
            ("jit_compile", .bool(true)),
        ])
    }
}

extension LossConfig {
    /// The loss's name, or Keras' serialized loss object when it has options.
    func kerasJSON() -> JSON {
        if name == "crf" {
            // The kiln_crf package's CRFLoss.
            return .object([("module", .string("kiln_crf")), ("class_name", .string("CRFLoss")),
                            ("config", .object([("name", .string("crf_loss")), ("reduction", .string("sum_over_batch_size")),
                                                ("dtype", .null), ("crf", crfLayer.map { .string($0) } ?? .null)])),
                            ("registered_name", .string("kiln_crf>CRFLoss"))])
        }
        let classes = ["categorical_crossentropy": "CategoricalCrossentropy", "binary_crossentropy": "BinaryCrossentropy",
                       "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy"]
        guard fromLogits || labelSmoothing != 0, let cls = classes[name] else { return .string(name) }
        var config: [(String, JSON)] = [("name", .string(name)), ("reduction", .string("sum_over_batch_size")),
                                        ("from_logits", .bool(fromLogits))]
        if name == "sparse_categorical_crossentropy" {
            config.append(("ignore_class", .null))
        } else {
            config += [("label_smoothing", KerasJSON.float(labelSmoothing)), ("axis", .number(-1))]
        }
        return .object([("module", .string("keras.losses")), ("class_name", .string(cls)), ("config", .object(config)),
                        ("registered_name", .null)])
    }
}

extension OptimizerConfig {
    /// Keras' serialized optimizer.
    func kerasJSON() -> JSON {
        func opt(_ v: Float?) -> JSON { v.map(KerasJSON.float) ?? .null }
        var config: [(String, JSON)] = [
            ("name", .string(KerasArchive.snakeCase(name))),
            ("learning_rate", KerasJSON.float(learningRate)),
            ("weight_decay", opt(weightDecay)),
            ("clipnorm", opt(clipnorm)),
            ("global_clipnorm", opt(globalClipnorm)),
            ("clipvalue", opt(clipvalue)),
            ("use_ema", .bool(false)),
            ("ema_momentum", .number(0.99)),
            ("ema_overwrite_frequency", .null),
            ("loss_scale_factor", .null),
            ("gradient_accumulation_steps", .null),
        ]
        // Each class's own keys, in Keras' order.
        let order: [String: [String]] = [
            "SGD": ["momentum", "nesterov"],
            "RMSprop": ["rho", "momentum", "epsilon", "centered"],
            "Adagrad": ["initial_accumulator_value", "epsilon"],
            "Adadelta": ["rho", "epsilon"],
            "Adam": ["beta_1", "beta_2", "epsilon", "amsgrad"],
            "AdamW": ["beta_1", "beta_2", "epsilon", "amsgrad"],
            "Adamax": ["beta_1", "beta_2", "epsilon"],
            "Nadam": ["beta_1", "beta_2", "epsilon"],
        ]
        let keys = order[name] ?? []
        let rest = Set(settings.keys).union(flags.keys).subtracting(keys).sorted()
        for k in keys + rest {
            if let v = settings[k] { config.append((k, KerasJSON.float(v))) } else if let b = flags[k] { config.append((k, .bool(b))) }
        }
        return .object([("module", .string("keras.optimizers")), ("class_name", .string(name)), ("config", .object(config)),
                        ("registered_name", .null)])
    }
}
