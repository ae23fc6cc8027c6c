import KilnIR

/// Reads a `.keras` file's compile_config: loss(es), optimizer, metrics.
public enum KerasCompileConfig {
    /// Keras loss names and aliases -> canonical function name.
    public static let lossNames: [String: String] = {
        var m: [String: String] = [:]
        let canonical = ["mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
                         "mean_squared_logarithmic_error", "squared_hinge", "hinge", "categorical_hinge",
                         "binary_crossentropy", "log_cosh", "categorical_crossentropy",
                         "sparse_categorical_crossentropy", "kl_divergence", "poisson", "cosine_similarity"]
        for c in canonical { m[c] = c }
        let aliases = ["mse": "mean_squared_error", "mae": "mean_absolute_error", "mape": "mean_absolute_percentage_error",
                       "msle": "mean_squared_logarithmic_error", "logcosh": "log_cosh", "kld": "kl_divergence",
                       "kullback_leibler_divergence": "kl_divergence",
                       "MeanSquaredError": "mean_squared_error", "MeanAbsoluteError": "mean_absolute_error",
                       "MeanAbsolutePercentageError": "mean_absolute_percentage_error",
                       "MeanSquaredLogarithmicError": "mean_squared_logarithmic_error", "SquaredHinge": "squared_hinge",
                       "Hinge": "hinge", "CategoricalHinge": "categorical_hinge", "BinaryCrossentropy": "binary_crossentropy",
                       "LogCosh": "log_cosh", "CategoricalCrossentropy": "categorical_crossentropy",
                       "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy", "KLDivergence": "kl_divergence",
                       "Poisson": "poisson", "CosineSimilarity": "cosine_similarity",
                       // The kiln_crf package's CRFLoss (registered "kiln_crf>CRFLoss"), on a CRF layer's output.
                       "crf": "crf", "CRFLoss": "crf"]
        for (a, c) in aliases { m[a] = c }
        return m
    }()

    public static let optimizerNames = ["SGD", "RMSprop", "Adagrad", "Adadelta", "Adam", "AdamW", "Adamax", "Nadam"]

    /// - Parameter outputNames: the model's outputs, in order (a loss dict is keyed by them).
    public static func parse(_ cc: JSON, outputNames: [String], file: String) throws -> TrainingConfig? {
        let outputs = outputNames.count
        guard let lossJSON = cc["loss"], !lossJSON.isNull else { return nil }
        /// A per-output value given as a list (in output order) or a dict keyed by output name.
        func perOutput(_ j: JSON, _ what: String) throws -> [JSON]? {
            if let list = j.array { return list }
            guard let obj = j.object, j["class_name"] == nil else { return nil }
            return try outputNames.map { name in
                guard let v = obj.first(where: { $0.0 == name })?.1 else {
                    throw KerasImportError("\(file): compile_config's \(what) has no entry for output '\(name)' (it has \(obj.map(\.0).joined(separator: ", ")))")
                }
                return v
            }
        }
        var losses: [LossConfig] = []
        if let list = try perOutput(lossJSON, "loss") {
            losses = try list.map { try loss($0, file: file) }
        } else {
            losses = [try loss(lossJSON, file: file)]
        }
        if losses.count == 1 && outputs > 1 { losses = Array(repeating: losses[0], count: outputs) }
        guard losses.count == outputs else {
            throw KerasImportError("\(file): compile_config has \(losses.count) losses for \(outputs) outputs")
        }
        var weights: [Float]? = nil
        if let lw = cc["loss_weights"], !lw.isNull, let list = try perOutput(lw, "loss_weights") {
            weights = try list.map { w in
                guard let f = w.float else { throw KerasImportError("\(file): compile_config's loss_weights holds a value that is not a number") }
                return f
            }
        }
        guard let opt = cc["optimizer"] else { throw KerasImportError("\(file): compile_config has a loss but no optimizer") }
        var metrics: [String] = []
        if let ms = cc["metrics"]?.array { metrics = ms.compactMap { $0.string ?? $0["config"]?["name"]?.string } }
        return TrainingConfig(losses: losses, lossWeights: weights, optimizer: try optimizer(opt, file: file), metrics: metrics)
    }

    /// A loss by its Keras name or alias, with Keras' defaults (the `--loss` flag, and a
    /// compile_config that names its loss by a string).
    public static func loss(named raw: String, file: String) throws -> LossConfig {
        guard let name = lossNames[raw] else {
            throw KerasImportError("\(file): loss '\(raw)' is not one Kiln supports; supported: \(Set(lossNames.values).sorted().joined(separator: ", "))")
        }
        return LossConfig(name: name, fromLogits: false, labelSmoothing: 0)
    }

    public static func loss(_ j: JSON, file: String) throws -> LossConfig {
        if let raw = j.string { return try loss(named: raw, file: file) }
        var l = try loss(named: j["class_name"]?.string ?? "", file: file)
        let cfg = j["config"]
        if let r = cfg?["reduction"]?.string, r != "sum_over_batch_size" {
            throw KerasImportError("\(file): loss reduction '\(r)' is not supported; Kiln supports 'sum_over_batch_size'")
        }
        l.fromLogits = cfg?["from_logits"]?.bool ?? false
        l.labelSmoothing = cfg?["label_smoothing"]?.float ?? 0
        if l.name == "crf" {
            guard let layer = cfg?["crf"]?.string else {
                throw KerasImportError("\(file): the CRFLoss in compile_config names no CRF layer (its config has no string 'crf')")
            }
            l.crfLayer = layer
        }
        return l
    }

    /// An optimizer by its Keras name (any case), with Keras' defaults (the `--optimizer` flag,
    /// and a compile_config that names its optimizer by a string).
    public static func optimizer(named name: String, file: String) throws -> OptimizerConfig {
        guard let cls = optimizerNames.first(where: { $0.lowercased() == name.lowercased() }) else {
            throw KerasImportError("\(file): optimizer '\(name)' is not one Kiln supports; supported: \(optimizerNames.joined(separator: ", "))")
        }
        return OptimizerConfig.defaults(cls)
    }

    public static func optimizer(_ j: JSON, file: String) throws -> OptimizerConfig {
        var o = try optimizer(named: j.string ?? j["class_name"]?.string ?? "", file: file)
        let cls = o.name
        guard let cfg = j["config"] else { return o }
        if let lr = cfg["learning_rate"] {
            guard let v = lr.float else {
                throw KerasImportError("\(file): optimizer \(cls) uses a learning-rate schedule; Kiln supports a constant learning rate")
            }
            o.learningRate = v
        }
        if cfg["use_ema"]?.bool == true { throw KerasImportError("\(file): optimizer \(cls) uses EMA, which Kiln does not support") }
        o.weightDecay = cfg["weight_decay"]?.float ?? o.weightDecay
        if let g = cfg["gradient_accumulation_steps"]?.int, g > 1 {
            throw KerasImportError("\(file): optimizer \(cls) uses gradient accumulation, which Kiln does not support")
        }
        for (k, v) in cfg.object ?? [] {
            if let f = v.float, o.settings[k] != nil { o.settings[k] = f }
            if let b = v.bool, o.flags[k] != nil { o.flags[k] = b }
        }
        o.clipnorm = cfg["clipnorm"]?.float
        o.clipvalue = cfg["clipvalue"]?.float
        o.globalClipnorm = cfg["global_clipnorm"]?.float
        return o
    }
}

extension OptimizerConfig {
    /// Keras 3 defaults for each optimizer.
    public static func defaults(_ name: String) -> OptimizerConfig {
        switch name {
        case "SGD": return OptimizerConfig(name: name, learningRate: 0.01, settings: ["momentum": 0], flags: ["nesterov": false])
        case "RMSprop": return OptimizerConfig(name: name, learningRate: 0.001, settings: ["rho": 0.9, "momentum": 0, "epsilon": 1e-7], flags: ["centered": false])
        case "Adagrad": return OptimizerConfig(name: name, learningRate: 0.001, settings: ["initial_accumulator_value": 0.1, "epsilon": 1e-7])
        case "Adadelta": return OptimizerConfig(name: name, learningRate: 0.001, settings: ["rho": 0.95, "epsilon": 1e-7])
        case "Adam": return OptimizerConfig(name: name, learningRate: 0.001, settings: ["beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7], flags: ["amsgrad": false])
        case "AdamW":
            var o = OptimizerConfig(name: name, learningRate: 0.001, settings: ["beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7], flags: ["amsgrad": false])
            o.weightDecay = 0.004
            return o
        case "Adamax": return OptimizerConfig(name: name, learningRate: 0.001, settings: ["beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7])
        case "Nadam": return OptimizerConfig(name: name, learningRate: 0.001, settings: ["beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7])
        default: return OptimizerConfig(name: name, learningRate: 0.01)
        }
    }
}
