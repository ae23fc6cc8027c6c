// The training side of the Swift API: compile (loss and optimizer), compiling
// to a library, and predict / fit / evaluate in this process through a
// library compiled to a temporary folder and loaded with dlopen.

import Foundation
import KilnIR
import KilnLayers
import KilnKeras
import KilnLLVM
import KilnRuntime

extension KerasModel {
    // MARK: - compile

    /// Sets the loss and optimizer, as Keras' `model.compile`. Like Keras it
    /// starts a fresh optimizer: the next run compiles the model anew (the
    /// weights are kept).
    /// - Parameters:
    ///   - loss: a Keras loss name or alias, e.g. "mse", "categorical_crossentropy";
    ///     used for every output.
    ///   - optimizer: e.g. `.adam(learningRate: 1e-3)` (default `.rmsprop()`, as Keras).
    ///   - lossWeights: one weight per output (default 1 each).
    ///   - metrics: Keras metric names, recorded only.
    public func compile(loss: String, optimizer: OptimizerConfig = .rmsprop(), lossWeights: [Float]? = nil,
                        metrics: [String] = []) throws {
        try compile(losses: [try LossConfig.named(loss)], optimizer: optimizer, lossWeights: lossWeights, metrics: metrics)
    }

    /// Sets the loss and optimizer by their Keras names.
    /// - Parameters:
    ///   - loss: a Keras loss name, e.g. "mse".
    ///   - optimizer: a Keras optimizer name with its defaults, e.g. "adam", "sgd".
    public func compile(loss: String, optimizer: String) throws {
        try compile(loss: loss, optimizer: try OptimizerConfig.named(optimizer))
    }

    /// Sets the loss (with options) and optimizer.
    /// - Parameters:
    ///   - loss: e.g. `.categoricalCrossentropy(fromLogits: true)`; used for every output.
    ///   - optimizer: e.g. `.sgd(learningRate: 0.1, momentum: 0.9)`.
    ///   - lossWeights: one weight per output.
    ///   - metrics: Keras metric names, recorded only.
    public func compile(loss: LossConfig, optimizer: OptimizerConfig = .rmsprop(), lossWeights: [Float]? = nil,
                        metrics: [String] = []) throws {
        try compile(losses: [loss], optimizer: optimizer, lossWeights: lossWeights, metrics: metrics)
    }

    /// Sets one loss per output and the optimizer.
    /// - Parameters:
    ///   - losses: one per output in order, or one for all.
    ///   - optimizer: the optimizer.
    ///   - lossWeights: one weight per output; the total loss is the weighted sum.
    ///   - metrics: Keras metric names, recorded only.
    public func compile(losses: [LossConfig], optimizer: OptimizerConfig = .rmsprop(), lossWeights: [Float]? = nil,
                        metrics: [String] = []) throws {
        var list = try losses.map { l -> LossConfig in
            guard let canonical = KerasCompileConfig.lossNames[l.name] else { throw LossConfig.unknown(l.name) }
            var c = l; c.name = canonical; return c
        }
        if list.count == 1 { list = Array(repeating: list[0], count: outputs.count) }
        guard list.count == outputs.count else {
            throw KerasAPIError("model '\(name)' has \(outputs.count) outputs, but \(losses.count) losses were given.")
        }
        if let w = lossWeights, w.count != outputs.count {
            throw KerasAPIError("model '\(name)' has \(outputs.count) outputs, but \(w.count) loss weights were given.")
        }
        guard KerasCompileConfig.optimizerNames.contains(optimizer.name) else {
            throw KerasAPIError("optimizer '\(optimizer.name)' is not one Kiln supports; supported: \(KerasCompileConfig.optimizerNames.joined(separator: ", ")).")
        }
        invalidateLibrary()
        training = TrainingConfig(losses: list, lossWeights: lossWeights, optimizer: optimizer, metrics: metrics)
    }

    // MARK: - Libraries

    /// Compiles the model, with its current weights, into DIR/libNAME.so and
    /// DIR/NAME.h, as `kiln compile` does.
    /// - Parameters:
    ///   - dir: the output folder (created when missing).
    ///   - name: the library name (default: the model name), made a C identifier.
    ///   - swiftModule: also write DIR/module.modulemap for `import NAME` in Swift.
    ///   - options: compiler options (pass printing, LLVM IR).
    /// - Returns: the path of the library.
    @discardableResult
    public func compileLibrary(to dir: String, name libName: String? = nil, swiftModule: Bool = false,
                               options: CompileOptions = CompileOptions()) throws -> String {
        let n = Compiler.identifier(libName ?? name)
        let artifacts = try Compiler.compile(build(), name: n, to: dir, options: options)
        if swiftModule { try SwiftModuleWriter.write(name: n, outDir: dir) }
        return artifacts.library
    }

    /// Compiles the model to a temporary folder and loads the library; from
    /// then on `predict`, `fit` and `evaluate` run it, and `weights` reads
    /// back what training changed. Called by them when needed.
    /// - Returns: the loaded library (its instance is the model's).
    @discardableResult
    public func load() throws -> CompiledLibrary {
        pullFromLibrary()
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("kiln-api-\(getpid())-\(UUID().uuidString)").path
        defer { try? fm.removeItem(atPath: dir) }
        let path = try compileLibrary(to: dir)
        // The mapping stays valid after the file is removed.
        let lib = try CompiledLibrary(path: path)
        library = lib
        markSynced()
        return lib
    }

    /// The library to run, loaded and holding the current weights.
    func ready(forTraining: Bool) throws -> CompiledLibrary {
        if forTraining && training == nil {
            throw KerasAPIError("model '\(name)' has no loss: call compile(loss:optimizer:) before fit or evaluate.")
        }
        let lib = try library ?? load()
        try pushToLibrary()
        return lib
    }

    // MARK: - Running

    /// The forward pass (inference: dropout off), as Keras' `model.predict`.
    /// - Parameters:
    ///   - x: one array per model input, rows first.
    ///   - batchSize: rows per call into the library.
    /// - Returns: one array per model output.
    public func predict(_ x: [HostTensor], batchSize: Int = 32) throws -> [HostTensor] {
        try ready(forTraining: false).predict(x, batchSize: batchSize)
    }

    /// The forward pass of a one-input, one-output model.
    /// - Parameters:
    ///   - x: the input, rows first.
    ///   - batchSize: rows per call into the library.
    public func predict(_ x: HostTensor, batchSize: Int = 32) throws -> HostTensor {
        let out = try predict([x], batchSize: batchSize)
        guard out.count == 1 else { throw KerasAPIError("model '\(name)' has \(out.count) outputs; pass and take arrays.") }
        return out[0]
    }

    /// Trains with the compiled loss and optimizer, as Keras' `model.fit`.
    /// Afterwards `weights` (and each layer's) hold the trained values.
    /// - Parameters:
    ///   - x: one array per model input.
    ///   - y: one target array per model output.
    ///   - epochs: passes over the data.
    ///   - batchSize: rows per optimizer step; the last batch may be smaller.
    ///   - shuffle: shuffle the rows each epoch (repeatably, from `seed`).
    ///   - seed: seeds the shuffling and the dropout masks.
    ///   - verbose: print Keras-style progress to standard error.
    /// - Returns: the loss of each epoch, as Keras reports it.
    @discardableResult
    public func fit(x: [HostTensor], y: [HostTensor], epochs: Int = 1, batchSize: Int = 32, shuffle: Bool = true,
                    seed: UInt64 = 0, verbose: Bool = true) throws -> History {
        let lib = try ready(forTraining: true)
        defer { pullFromLibrary() }
        let options = FitOptions(epochs: epochs, batchSize: batchSize, shuffle: shuffle, seed: seed, verbose: verbose)
        return try KilnRuntime.fit(lib, x: x, y: y, options: options, isTerminal: stderrIsTerminal()) {
            FileHandle.standardError.write(Data($0.utf8))
        }
    }

    /// Trains a one-input, one-output model; see ``fit(x:y:epochs:batchSize:shuffle:seed:verbose:)``.
    /// - Parameters:
    ///   - x: the input.
    ///   - y: the target.
    ///   - epochs: passes over the data.
    ///   - batchSize: rows per optimizer step.
    ///   - shuffle: shuffle the rows each epoch.
    ///   - seed: seeds the shuffling and the dropout masks.
    ///   - verbose: print progress to standard error.
    @discardableResult
    public func fit(x: HostTensor, y: HostTensor, epochs: Int = 1, batchSize: Int = 32, shuffle: Bool = true,
                    seed: UInt64 = 0, verbose: Bool = true) throws -> History {
        try fit(x: [x], y: [y], epochs: epochs, batchSize: batchSize, shuffle: shuffle, seed: seed, verbose: verbose)
    }

    /// The loss on data without training, as Keras' `model.evaluate`: the
    /// mean of the batch losses weighted by batch size.
    /// - Parameters:
    ///   - x: one array per model input.
    ///   - y: one target array per model output.
    ///   - batchSize: rows per batch.
    public func evaluate(x: [HostTensor], y: [HostTensor], batchSize: Int = 32) throws -> Double {
        let lib = try ready(forTraining: true)
        guard batchSize >= 1 else { throw KerasAPIError("the batch size must be at least 1 (got \(batchSize)).") }
        let rows = x.first?.rows ?? 0
        guard rows > 0 else { throw KerasAPIError("there are no rows to evaluate.") }
        var total = 0.0
        for lo in stride(from: 0, to: rows, by: batchSize) {
            let r = lo..<min(lo + batchSize, rows)
            let loss = try lib.evaluate(x: x.map { $0.rows(r) }, y: y.map { $0.rows(r) })
            total += Double(loss) * Double(r.count)
        }
        return total / Double(rows)
    }

    /// The loss of a one-input, one-output model on data.
    /// - Parameters:
    ///   - x: the input.
    ///   - y: the target.
    ///   - batchSize: rows per batch.
    public func evaluate(x: HostTensor, y: HostTensor, batchSize: Int = 32) throws -> Double {
        try evaluate(x: [x], y: [y], batchSize: batchSize)
    }
}

extension HostTensor {
    /// Rows `r` of a tensor (all of it when it has fewer rows: shape errors
    /// are the library's to report).
    func rows(_ r: Range<Int>) -> HostTensor {
        guard let n = shape.first, r.upperBound <= n else { return self }
        let per = shape.dropFirst().reduce(1, *)
        let s = [r.count] + shape.dropFirst()
        switch dtype {
        case .float32: return HostTensor(shape: s, floats: Array(floats[r.lowerBound * per..<r.upperBound * per]))
        case .int32: return HostTensor(shape: s, ints: Array(ints[r.lowerBound * per..<r.upperBound * per]))
        }
    }
}

extension LossConfig {
    /// The Keras loss called `name` (an alias such as "mse" or a class name such as "MeanSquaredError").
    /// - Parameters:
    ///   - name: the Keras name.
    public static func named(_ name: String) throws -> LossConfig {
        guard let canonical = KerasCompileConfig.lossNames[name] else { throw unknown(name) }
        return LossConfig(name: canonical)
    }

    static func unknown(_ name: String) -> KerasAPIError {
        KerasAPIError("loss '\(name)' is not one Kiln supports; supported: \(Set(KerasCompileConfig.lossNames.values).sorted().joined(separator: ", ")).")
    }

    /// Mean squared error ("mse").
    public static let meanSquaredError = LossConfig(name: "mean_squared_error")
    /// Mean absolute error ("mae").
    public static let meanAbsoluteError = LossConfig(name: "mean_absolute_error")

    /// Cross-entropy against one-hot targets.
    /// - Parameters:
    ///   - fromLogits: the outputs are logits rather than probabilities.
    ///   - labelSmoothing: mixes the targets with the uniform distribution.
    public static func categoricalCrossentropy(fromLogits: Bool = false, labelSmoothing: Float = 0) -> LossConfig {
        LossConfig(name: "categorical_crossentropy", fromLogits: fromLogits, labelSmoothing: labelSmoothing)
    }

    /// Cross-entropy against integer class ids.
    /// - Parameters:
    ///   - fromLogits: the outputs are logits rather than probabilities.
    public static func sparseCategoricalCrossentropy(fromLogits: Bool = false) -> LossConfig {
        LossConfig(name: "sparse_categorical_crossentropy", fromLogits: fromLogits)
    }

    /// Cross-entropy against 0/1 targets.
    /// - Parameters:
    ///   - fromLogits: the outputs are logits rather than probabilities.
    ///   - labelSmoothing: pulls the targets towards 0.5.
    public static func binaryCrossentropy(fromLogits: Bool = false, labelSmoothing: Float = 0) -> LossConfig {
        LossConfig(name: "binary_crossentropy", fromLogits: fromLogits, labelSmoothing: labelSmoothing)
    }
}

extension OptimizerConfig {
    /// The Keras optimizer called `name` ("sgd", "adam", "RMSprop", ...) with Keras' defaults.
    /// - Parameters:
    ///   - name: the Keras name, any case.
    public static func named(_ name: String) throws -> OptimizerConfig {
        guard let cls = KerasCompileConfig.optimizerNames.first(where: { $0.lowercased() == name.lowercased() }) else {
            throw KerasAPIError("optimizer '\(name)' is not one Kiln supports; supported: \(KerasCompileConfig.optimizerNames.joined(separator: ", ")).")
        }
        return .defaults(cls)
    }

    private static func make(_ name: String, _ lr: Float, _ settings: [String: Float], _ flags: [String: Bool] = [:]) -> OptimizerConfig {
        var o = OptimizerConfig.defaults(name)
        o.learningRate = lr
        for (k, v) in settings { o.settings[k] = v }
        for (k, v) in flags { o.flags[k] = v }
        return o
    }

    /// Keras' `SGD`.
    /// - Parameters:
    ///   - learningRate: the step size.
    ///   - momentum: the velocity's decay (0: plain SGD).
    ///   - nesterov: use Nesterov momentum.
    public static func sgd(learningRate: Float = 0.01, momentum: Float = 0, nesterov: Bool = false) -> OptimizerConfig {
        make("SGD", learningRate, ["momentum": momentum], ["nesterov": nesterov])
    }

    /// Keras' `RMSprop`.
    /// - Parameters:
    ///   - learningRate: the step size.
    ///   - rho: the decay of the mean square.
    ///   - momentum: the velocity's decay.
    ///   - epsilon: added to the denominator.
    ///   - centered: divide by the variance rather than the mean square.
    public static func rmsprop(learningRate: Float = 0.001, rho: Float = 0.9, momentum: Float = 0, epsilon: Float = 1e-7,
                               centered: Bool = false) -> OptimizerConfig {
        make("RMSprop", learningRate, ["rho": rho, "momentum": momentum, "epsilon": epsilon], ["centered": centered])
    }

    /// Keras' `Adam`.
    /// - Parameters:
    ///   - learningRate: the step size.
    ///   - beta1: the decay of the first moment.
    ///   - beta2: the decay of the second moment.
    ///   - epsilon: added to the denominator.
    ///   - amsgrad: use the maximum of past second moments.
    public static func adam(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7,
                            amsgrad: Bool = false) -> OptimizerConfig {
        make("Adam", learningRate, ["beta_1": beta1, "beta_2": beta2, "epsilon": epsilon], ["amsgrad": amsgrad])
    }

    /// Keras' `Adamax`.
    /// - Parameters:
    ///   - learningRate: the step size.
    ///   - beta1: the decay of the first moment.
    ///   - beta2: the decay of the infinity norm.
    ///   - epsilon: added to the denominator.
    public static func adamax(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7) -> OptimizerConfig {
        make("Adamax", learningRate, ["beta_1": beta1, "beta_2": beta2, "epsilon": epsilon])
    }

    /// Keras' `Nadam`.
    /// - Parameters:
    ///   - learningRate: the step size.
    ///   - beta1: the decay of the first moment.
    ///   - beta2: the decay of the second moment.
    ///   - epsilon: added to the denominator.
    public static func nadam(learningRate: Float = 0.001, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-7) -> OptimizerConfig {
        make("Nadam", learningRate, ["beta_1": beta1, "beta_2": beta2, "epsilon": epsilon])
    }

    /// Keras' `Adagrad`.
    /// - Parameters:
    ///   - learningRate: the step size.
    ///   - initialAccumulatorValue: the starting sum of squares.
    ///   - epsilon: added to the denominator.
    public static func adagrad(learningRate: Float = 0.001, initialAccumulatorValue: Float = 0.1, epsilon: Float = 1e-7) -> OptimizerConfig {
        make("Adagrad", learningRate, ["initial_accumulator_value": initialAccumulatorValue, "epsilon": epsilon])
    }

    /// Keras' `Adadelta`.
    /// - Parameters:
    ///   - learningRate: the step size.
    ///   - rho: the decay rate.
    ///   - epsilon: added to the denominator.
    public static func adadelta(learningRate: Float = 0.001, rho: Float = 0.95, epsilon: Float = 1e-7) -> OptimizerConfig {
        make("Adadelta", learningRate, ["rho": rho, "epsilon": epsilon])
    }
}
