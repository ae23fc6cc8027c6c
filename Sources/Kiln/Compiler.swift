import Foundation
import KilnIR
import KilnKeras
import KilnLLVM
import KilnPasses
import KilnSupport

/// Options of `kiln compile`.
public struct CompileOptions {
    public var name: String?
    /// Print the graph after these passes (by pass name), to `log`.
    public var printAfter: Set<String> = []
    public var printAll = false
    /// Overrides of the file's compile_config.
    public var loss: String?
    public var optimizer: String?
    public var learningRate: Float?
    /// Also write NAME.ll (the optimized LLVM IR) beside the library.
    public var emitLLVM = false
    /// Which recurrent scans become straight-line code (the unroll pass).
    public var unroll: UnrollPolicy = .auto
    /// The model file the model was read from: NAME_info() reports the SHA-256 of its bytes.
    public var sourceFile: String?
    public init() {}
}

/// What `kiln compile` wrote.
public struct CompiledArtifacts {
    public var library: String
    public var header: String
    public var name: String
    /// What the library's header describes (inputs, outputs, targets, weights): the
    /// wrappers (`--python`, `--swift`) are written from it.
    public var glue: GlueModel
    /// DIR/NAME.pc, the pkg-config file beside the library.
    public var pkgConfig: String
}

/// The compiler's front door: a model in, libNAME.so + NAME.h out.
public enum Compiler {
    /// Loads a model file (a Keras 3 `.keras` archive or a legacy HDF5 `.h5` model, told apart by
    /// their content), with the weights of `weights` (a `.weights.h5` or a legacy `.h5`) when given.
    public static func load(_ path: String, weights: String? = nil) throws -> Model {
        let spec = try KerasModelFile.read(path: path, weights: weights)
        return try KerasGraphBuilder.build(spec, file: (path as NSString).lastPathComponent)
    }

    /// The default library name for a model file: its stem, made a C identifier.
    public static func defaultName(_ path: String) -> String {
        LibraryGlue.cIdentifier(((path as NSString).lastPathComponent as NSString).deletingPathExtension)
    }

    /// A name made a C identifier.
    public static func identifier(_ s: String) -> String { LibraryGlue.cIdentifier(s) }

    /// Compiles a model into DIR/libNAME.so and DIR/NAME.h.
    @discardableResult
    public static func compile(_ model: Model, name: String, to outDir: String, options: CompileOptions = CompileOptions(),
                               log: (String) -> Void = { FileHandle.standardError.write(($0 + "\n").data(using: .utf8)!) }) throws -> CompiledArtifacts {
        var model = model
        model.graph.name = name
        if options.loss != nil || options.optimizer != nil || options.learningRate != nil {
            model.training = try overrideTraining(model, options)
        }
        // KILN_TIMING=1 prints how long each pass and phase takes, with the graph's size.
        let timing = ProcessInfo.processInfo.environment["KILN_TIMING"] != nil
        var clock = Date()
        func lap(_ what: String) {
            if timing { log(String(format: "// %-28@ %8.3f s", what as NSString, Date().timeIntervalSince(clock))) }
            clock = Date()
        }
        let observe: (String, Graph) -> Void = { pass, g in
            lap("\(pass) (\(g.nodes.count) nodes)")
            if options.printAll || options.printAfter.contains(pass) { log("// after \(pass)\n\(g)") }
        }
        // The layer graph is lowered once; predict, the training step and evaluation start from it.
        // Predict and evaluation share its inference form.
        let lowered = try Pipeline.run(Pipeline.lowering, model.graph, observe: observe)
        let inferred = try Pipeline.run(Pipeline.inferenceForm(unroll: options.unroll), lowered, observe: observe)
        // Predict computes no loss terms (activity regularization is evaluation's and training's).
        var forPredict = inferred
        forPredict.lossTerms = []
        // Predict writes the state stateful layers carry to the next call, after everything else.
        for u in forPredict.stateUpdates { try forPredict.add(.prim(.assign), [u.param, u.value], layer: "state") }
        forPredict.stateUpdates = []
        let predictGraph = try Pipeline.run(Pipeline.optimizations, forPredict, observe: observe)
        var steps: (train: TrainingBuilder.Result, evaluate: TrainingBuilder.Result)? = nil
        if let cfg = model.training, TrainingBuilder.enabled {
            steps = try TrainingBuilder.build(layers: model.graph, lowered: lowered, inferred: inferred, cfg, unroll: options.unroll,
                                              observe: observe)
        }
        // One state layout for every program, planned once: the training graph's params (the
        // weights, then the optimizer's slots), or predict's when the model does not train.
        let stateParams = steps?.train.graph.params ?? predictGraph.params
        let layout = StateLayout(stateParams)
        let predict = try schedule(predictGraph, state: layout)
        lap("schedule predict (\(predict.steps.count) steps)")

        var train: Program? = nil, evaluate: Program? = nil
        var targets: [GlueTensor] = []
        var metricNames: [String] = []
        if let (tg, eg) = steps {
            train = try schedule(tg.graph, state: layout, result: tg.loss, metrics: tg.metrics)
            evaluate = try schedule(eg.graph, state: layout, result: eg.loss, metrics: eg.metrics)
            lap("schedule train (\(train!.steps.count) steps)")
            metricNames = tg.metricNames
            targets = tg.targets.map { GlueTensor(name: $0.0, dtype: $0.1.dtype == .i32 ? "i32" : "f32", shape: $0.1.externalShape) }
        }
        let showSchedule = options.printAll || options.printAfter.contains("schedule")
        if showSchedule {
            log("// schedule of predict (arena: \(predict.arenaDescription))\n\(predict.description)")
            if let t = train { log("// schedule of the training step (arena: \(t.arenaDescription))\n\(t.description)") }
        }
        var image = [UInt8](repeating: 0, count: layout.bytes)
        var weights: [GlueWeight] = []
        for p in stateParams {
            guard let off = layout.offsets[p.name] else { continue }
            p.initial.withUnsafeBytes { raw in
                for (i, byte) in raw.enumerated() { image[off + i] = byte }
            }
            if p.role == .weight {
                weights.append(GlueWeight(name: p.name, shape: p.type.externalShape, offset: off, trainable: p.trainable))
            }
        }
        var glue = GlueModel(
            name: name,
            inputs: zip(predictGraph.inputs, predictGraph.inputNames).map { v, n in
                GlueTensor(name: n, dtype: predictGraph.type(v).dtype == .i32 ? "i32" : "f32", shape: predictGraph.type(v).externalShape) },
            outputs: zip(predictGraph.outputs, predictGraph.outputNames).map { v, n in
                GlueTensor(name: n, dtype: predictGraph.type(v).dtype == .i32 ? "i32" : "f32", shape: predictGraph.type(v).externalShape) },
            targets: targets, weights: weights, stateBytes: layout.bytes,
            predictArenaPerSample: predict.arenaPerSample, predictArenaFixed: predict.arenaFixed,
            trainArenaPerSample: max(train?.arenaPerSample ?? 0, evaluate?.arenaPerSample ?? 0),
            trainArenaFixed: max(train?.arenaFixed ?? 0, evaluate?.arenaFixed ?? 0),
            hasTraining: train != nil,
            loss: model.training?.losses.map(\.name).joined(separator: ",") ?? "",
            optimizer: model.training?.optimizer.name ?? "")
        glue.metrics = metricNames
        if let file = options.sourceFile {
            guard let bytes = FileManager.default.contents(atPath: file) else {
                throw BackendError("cannot read the model file \(file) to hash it")
            }
            glue.sourceSHA256 = SHA256.hex([UInt8](bytes))
        }
        // Stateful recurrent layers' carried state: cleared by reset_states; batches of the Input's size.
        for p in stateParams where p.role == .carried {
            if let off = layout.offsets[p.name] { glue.carried += [off, p.type.staticCount * p.type.dtype.byteSize] }
        }
        if !glue.carried.isEmpty { glue.fixedBatch = model.graph.batchSize ?? 0 }
        glue.freeSteps = predictGraph.inputs.contains { predictGraph.type($0).scalesWithSteps }
        glue.predictArenaPerRowStep = predict.arenaPerSampleStep
        glue.predictArenaPerStep = predict.arenaPerStep
        glue.trainArenaPerRowStep = max(train?.arenaPerSampleStep ?? 0, evaluate?.arenaPerSampleStep ?? 0)
        glue.trainArenaPerStep = max(train?.arenaPerStep ?? 0, evaluate?.arenaPerStep ?? 0)
        // The optimizer slots start at zero: the library stores the image up to its last nonzero byte.
        image.removeLast(image.count - ((image.lastIndex { $0 != 0 } ?? -1) + 1))
        glue.initStateBytes = image.count

        let fm = FileManager.default
        let work = fm.temporaryDirectory.appendingPathComponent("kiln-\(getpid())-\(UUID().uuidString)").path
        try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: work) }
        do {
            try fm.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        } catch {
            throw BackendError("cannot create the output directory \(outDir): \((error as NSError).localizedDescription)")
        }
        let obj = work + "/\(name).o"
        try ObjectEmitter.emit(LibraryPrograms(name: name, predict: predict, train: train, evaluate: evaluate, initialState: image),
                               to: obj, llvmIR: options.emitLLVM ? outDir + "/\(name).ll" : nil)
        lap("LLVM")
        try LibraryLinker.link(objectPath: obj, glue: glue, runtimeDir: try LibraryLinker.runtimeDirectory(), outDir: outDir)
        lap("link")
        let pc = try PkgConfigWriter.write(name: name, outDir: outDir, version: glue.kilnVersion)
        return CompiledArtifacts(library: outDir + "/lib\(name).so", header: outDir + "/\(name).h", name: name, glue: glue, pkgConfig: pc)
    }

    static func overrideTraining(_ model: Model, _ o: CompileOptions) throws -> TrainingConfig {
        let outputs = model.graph.outputs.count
        var cfg = model.training ?? TrainingConfig(losses: [], optimizer: .defaults("SGD"))
        if let l = o.loss {
            let loss = try KerasCompileConfig.loss(named: l, file: "--loss")
            cfg.losses = Array(repeating: loss, count: outputs)
        }
        if let name = o.optimizer {
            let opt = try KerasCompileConfig.optimizer(named: name, file: "--optimizer")
            cfg.optimizer = opt
        }
        if let lr = o.learningRate { cfg.optimizer.learningRate = lr }
        if cfg.losses.isEmpty { throw KerasImportError("the model has no loss: pass --loss (e.g. --loss mean_squared_error)") }
        return cfg
    }
}
