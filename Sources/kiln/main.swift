import ArgumentParser
import Foundation
import Kiln
import KilnIR
import KilnLLVM
import KilnPasses
import KilnRuntime
import KilnSupport

/// Exit 1 with one clear sentence on a user error.
struct UserError: Error, CustomStringConvertible { var description: String }

func fail(_ e: Error) -> Never {
    // Our errors describe themselves in one sentence; Foundation's get their localized text.
    let text = e is CocoaError || type(of: e) == NSError.self ? (e as NSError).localizedDescription : String(describing: e)
    FileHandle.standardError.write(("kiln: " + text + "\n").data(using: .utf8)!)
    exit(1)
}

struct KilnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kiln",
        abstract: "Compile Keras models ahead of time into native shared libraries.",
        version: KilnVersion.string,
        subcommands: [Summary.self, Compile.self, Predict.self, Fit.self, Evaluate.self, Plot.self, Vectors.self, GraphCommand.self])
}

struct Summary: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the Keras-style summary table of a model.")
    @Argument(help: "A Keras 3 .keras file or a legacy HDF5 .h5 model.") var model: String
    func run() throws {
        do {
            let m = try Compiler.load(model)
            print(ModelSummary.render(m), terminator: "")
        } catch { fail(error) }
    }
}

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Compile a model into DIR/libNAME.so and DIR/NAME.h.")
    @Argument(help: "A Keras 3 .keras file or a legacy HDF5 .h5 model (Keras 2 / tf.keras, or Keras 3's legacy save).") var model: String
    @Option(name: .shortAndLong, help: "Output directory.") var output: String
    @Option(help: "Weights to use instead of the model file's: a Keras 3 .weights.h5 or a legacy .h5 (save_weights, or a whole legacy model).")
    var weights: String?
    @Option(help: "Library name (default: the file's stem, as a C identifier).") var name: String?
    @Option(help: "Loss, overriding the file's compile_config.") var loss: String?
    @Option(help: "Optimizer, overriding the file's compile_config.") var optimizer: String?
    @Option(name: .customLong("learning-rate"), help: "Learning rate, overriding the file's.") var learningRate: Float?
    @Option(name: .customLong("print-after"), help: "Print the graph after a pass (lower, fuse-conv, fuse-elementwise, conv-gemm, cse, dce, autodiff, train-...), the kernel schedule ('schedule'), or 'all'.")
    var printAfter: [String] = []
    @Flag(name: .customLong("emit-llvm"), help: "Also write NAME.ll, the optimized LLVM IR.") var emitLLVM = false
    @Option(help: "Which recurrent scans to unroll into straight-line code: auto (only those a compiled loop cannot run), always, never.")
    var unroll: String = "auto"
    @Flag(name: .customLong("swift-module"), help: "Also write DIR/module.modulemap so that Swift code can `import NAME`.") var swiftModule = false
    @Flag(name: .customLong("python"), help: "Also write DIR/NAME.py, a ctypes wrapper taking and returning numpy arrays.") var python = false
    @Flag(name: .customLong("swift"), help: "Also write DIR/NAME.swift, a typed Swift class over the library (and DIR/module.modulemap).") var swift = false

    func run() throws {
        guard let policy = UnrollPolicy(rawValue: unroll) else {
            throw ValidationError("--unroll takes auto, always or never, not '\(unroll)'")
        }
        do {
            let m = try Compiler.load(model, weights: weights)
            var o = CompileOptions()
            o.loss = loss; o.optimizer = optimizer; o.learningRate = learningRate
            o.printAfter = Set(printAfter)
            o.unroll = policy
            o.printAll = printAfter.contains("all")
            o.emitLLVM = emitLLVM
            o.sourceFile = model
            let n = name.map { Compiler.identifier($0) } ?? Compiler.defaultName(model)
            let a = try Compiler.compile(m, name: n, to: output, options: o) { print($0) }
            if swiftModule || swift { try SwiftModuleWriter.write(name: n, outDir: output) }
            var extra: [String] = []
            if python { extra.append(try PythonWrapper.write(a.glue, outDir: output)) }
            if swift { extra.append(try SwiftWrapper.write(a.glue, outDir: output)) }
            print("wrote \(a.library) and \(a.header)" + extra.map { ", \($0)" }.joined())
        } catch { fail(error) }
    }
}

/// A model with stateful recurrent layers runs batches of its fixed size only (Keras' rule):
/// an explicit --batch-size must be that size.
func checkStatefulBatch(_ lib: CompiledLibrary, _ batchSize: Int?) throws {
    if let fixed = lib.fixedBatch, let given = batchSize, given != fixed {
        throw UserError(description: "model '\(lib.name)' has stateful layers for batches of exactly \(fixed) rows; --batch-size \(given) differs")
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a compiled library's forward pass on .npy inputs.")
    @Argument(help: "A compiled libNAME.so.") var library: String
    @Option(name: .customLong("input"), help: "An input .npy, one per model input, in order.") var inputs: [String] = []
    @Option(name: .customLong("output"), help: "An output .npy to write, one per model output.") var outputs: [String] = []
    @Option(name: .customLong("batch-size"), help: "Rows per call (default 256; a model with stateful layers: its fixed batch size).") var batchSize: Int?
    @Flag(help: "Write class ids (int32) instead of the outputs: the argmax over the last axis, or for an output of one unit (a sigmoid) 1 where it is above 0.5, as Keras 2's predict_classes.")
    var classes = false
    @Flag(name: .customLong("check-inputs"), help: "Refuse inputs holding NaN or inf, naming the input and row.") var checkInputs = false

    func run() throws {
        do {
            let lib = try CompiledLibrary(path: library)
            guard inputs.count == lib.inputs.count else {
                throw UserError(description: "the model takes \(lib.inputs.count) input(s) (\(lib.inputs.map(\.name).joined(separator: ", "))), \(inputs.count) --input given")
            }
            guard outputs.count == lib.outputs.count else {
                throw UserError(description: "the model has \(lib.outputs.count) output(s) (\(lib.outputs.map(\.name).joined(separator: ", "))), \(outputs.count) --output given")
            }
            try checkStatefulBatch(lib, batchSize)
            let xs = try inputs.map { try NPY.read(path: $0) }
            if checkInputs { try checkFinite(xs, names: lib.inputs.map(\.name), role: "input") }
            var ys = try lib.predict(xs, batchSize: batchSize ?? 256)
            if classes { ys = try ys.map { try classIds($0) } }
            for (y, path) in zip(ys, outputs) { try NPY.write(y, path: path) }
        } catch { fail(error) }
    }
}

/// One input .npy per model input and one target .npy per model output, as `flags` give them
/// (`kiln fit`'s training and validation arrays, `kiln evaluate`'s).
func checkArrayCounts(_ lib: CompiledLibrary, x: [String], y: [String], flags: (x: String, y: String) = ("--x", "--y")) throws {
    guard x.count == lib.inputs.count else {
        throw UserError(description: "the model takes \(lib.inputs.count) input(s), \(x.count) \(flags.x) given")
    }
    guard y.count == lib.outputs.count else {
        throw UserError(description: "the model has \(lib.outputs.count) output(s), \(y.count) \(flags.y) given")
    }
}

struct Fit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a compiled library with its compiled loss and optimizer.")
    @Argument(help: "A compiled libNAME.so.") var library: String
    @Option(name: .customLong("x"), help: "A training input .npy, one per model input.") var xs: [String] = []
    @Option(name: .customLong("y"), help: "A target .npy, one per model output.") var ys: [String] = []
    @Option(help: "Epochs.") var epochs: Int = 1
    @Option(name: .customLong("batch-size"), help: "Batch size (default 32; a model with stateful layers: its fixed batch size, in row order).") var batchSize: Int?
    @Flag(name: .customLong("shuffle"), inversion: .prefixedNo, help: "Shuffle the rows each epoch, repeatably from --seed (default); --no-shuffle: batches in row order.")
    var shuffle = true
    @Option(help: "Seed for shuffling and dropout: the same seed gives the same row order and the same result.") var seed: UInt64 = 0
    @Option(name: .customLong("save-weights"), help: "Write DIR/000.npy ... in get_weights() order after training.") var saveWeights: String?
    @Option(help: "Write {\"loss\": [...], \"accuracy\": [...], \"val_loss\": [...], ...} per epoch to this JSON file.") var history: String?
    @Option(help: ArgumentHelp("0: silent; 1: a progress bar per batch; 2: one line per epoch (default: 1 on a terminal, 2 otherwise), as Keras.", valueName: "0|1|2"))
    var verbose: Int?
    @Option(name: .customLong("validation-split"), help: ArgumentHelp("Hold out the last fraction F of the rows (before shuffling) and report val_loss and val_ metrics each epoch, as Keras.", valueName: "F"))
    var validationSplit: Double?
    @Option(name: .customLong("validation-x"), help: ArgumentHelp("A validation input .npy, one per model input (Keras' validation_data).", valueName: "X.npy")) var validationXs: [String] = []
    @Option(name: .customLong("validation-y"), help: ArgumentHelp("A validation target .npy, one per model output.", valueName: "Y.npy")) var validationYs: [String] = []
    @Option(name: .customLong("early-stopping"), help: ArgumentHelp("Stop after PATIENCE epochs without improvement of --monitor, as keras.callbacks.EarlyStopping.", valueName: "PATIENCE"))
    var earlyStopping: Int?
    @Option(help: ArgumentHelp("The value --early-stopping and --checkpoint watch (default val_loss): loss, a metric, or val_ either.", valueName: "NAME")) var monitor: String?
    @Option(help: ArgumentHelp("Whether --monitor improves going down or up: auto (min for a loss, max for an accuracy), min or max.", valueName: "auto|min|max")) var mode: String?
    @Option(name: .customLong("min-delta"), help: ArgumentHelp("--early-stopping: smaller changes than this are no improvement.", valueName: "D")) var minDelta: Double?
    @Flag(name: .customLong("restore-best-weights"), help: "--early-stopping: end with the weights of the best epoch.") var restoreBestWeights = false
    @Option(help: ArgumentHelp("Save the weights of the best epoch so far (by --monitor) as DIR/000.npy ... and DIR/checkpoint.json, as ModelCheckpoint(save_best_only=True).", valueName: "DIR"))
    var checkpoint: String?
    @Option(name: .customLong("initial-epoch"), help: ArgumentHelp("Start counting at this epoch (resuming): trains epochs N+1 to --epochs, as Keras.", valueName: "N"))
    var initialEpoch: Int = 0
    @Flag(name: .customLong("check-inputs"), help: "Refuse inputs and targets holding NaN or inf, naming them and the row.") var checkInputs = false

    func validate() throws {
        if let v = verbose, !(0...2).contains(v) { throw ValidationError("--verbose takes 0, 1 or 2, not \(v)") }
        if let f = validationSplit, !(f > 0 && f < 1) { throw ValidationError("--validation-split takes a fraction between 0 and 1 (exclusive), not \(f)") }
        if validationXs.isEmpty != validationYs.isEmpty { throw ValidationError("--validation-x and --validation-y go together") }
        if validationSplit != nil && !validationXs.isEmpty { throw ValidationError("give either --validation-split or --validation-x/--validation-y, not both") }
        if let p = earlyStopping, p < 0 { throw ValidationError("--early-stopping takes a patience of 0 or more epochs, not \(p)") }
        if earlyStopping == nil && (minDelta != nil || restoreBestWeights) {
            throw ValidationError("--min-delta and --restore-best-weights need --early-stopping")
        }
        if earlyStopping == nil && checkpoint == nil && (monitor != nil || mode != nil) {
            throw ValidationError("--monitor and --mode need --early-stopping or --checkpoint")
        }
        if let m = mode, MonitorMode(rawValue: m) == nil { throw ValidationError("--mode takes auto, min or max, not '\(m)'") }
        if initialEpoch < 0 { throw ValidationError("--initial-epoch must be 0 or more, not \(initialEpoch)") }
    }

    func run() throws {
        do {
            guard epochs >= 0, (batchSize ?? 32) > 0 else { throw UserError(description: "--epochs must be 0 or more and --batch-size 1 or more") }
            let lib = try CompiledLibrary(path: library)
            try checkStatefulBatch(lib, batchSize)
            guard lib.canTrain else {
                throw UserError(description: "\(library) was compiled without a training step (its model has no loss); recompile with --loss")
            }
            try checkArrayCounts(lib, x: xs, y: ys)
            if !validationXs.isEmpty { try checkArrayCounts(lib, x: validationXs, y: validationYs, flags: ("--validation-x", "--validation-y")) }
            let x = try xs.map { try NPY.read(path: $0) }
            let y = try ys.map { try NPY.read(path: $0) }
            if checkInputs {
                try checkFinite(x, names: lib.inputs.map(\.name), role: "input")
                try checkFinite(y, names: lib.targets.map(\.name), role: "target")
            }
            let validation = validationXs.isEmpty ? nil
                : (x: try validationXs.map { try NPY.read(path: $0) }, y: try validationYs.map { try NPY.read(path: $0) })
            var o = FitOptions(epochs: epochs, batchSize: batchSize ?? 32, shuffle: shuffle, seed: seed, verbose: true)
            o.verbosity = verbose
            o.initialEpoch = initialEpoch
            o.validationSplit = validationSplit ?? 0
            let m = MonitorMode(rawValue: mode ?? "auto") ?? .auto
            if let p = earlyStopping {
                o.earlyStopping = EarlyStopping(monitor: monitor ?? "val_loss", patience: p, minDelta: minDelta ?? 0, mode: m,
                                                restoreBestWeights: restoreBestWeights)
            }
            if let dir = checkpoint { o.checkpoint = Checkpoint(directory: dir, monitor: monitor ?? "val_loss", mode: m) }
            let tty = isatty(2) != 0
            let h = try fit(lib, x: x, y: y, validation: validation, options: o, isTerminal: tty) {
                FileHandle.standardError.write($0.data(using: .utf8)!)
            }
            if let dir = saveWeights {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                for (i, w) in lib.getWeights().enumerated() {
                    try NPY.write(w, path: dir + "/" + String(format: "%03d.npy", i))
                }
            }
            if let path = history {
                try h.json().write(toFile: path, atomically: true, encoding: .utf8)
            }
        } catch { fail(error) }
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a compiled library's loss and metrics on .npy data, as Keras' model.evaluate.",
        discussion: "Prints `loss: L - METRIC: M ...` on standard output (a progress bar on a terminal goes to standard error).")
    @Argument(help: "A compiled libNAME.so.") var library: String
    @Option(name: .customLong("x"), help: "An input .npy, one per model input.") var xs: [String] = []
    @Option(name: .customLong("y"), help: "A target .npy, one per model output.") var ys: [String] = []
    @Option(name: .customLong("batch-size"), help: "Rows per call (Keras' default 32).") var batchSize: Int = 32
    @Option(help: "1: a progress bar on standard error (default on a terminal); 0 or 2: none. The result is printed either way.") var verbose: Int?
    @Option(help: ArgumentHelp("Also write {\"loss\": L, \"METRIC\": M, ...} to this JSON file.", valueName: "F.json")) var output: String?

    func validate() throws {
        if let v = verbose, !(0...2).contains(v) { throw ValidationError("--verbose takes 0, 1 or 2, not \(v)") }
        if batchSize < 1 { throw ValidationError("--batch-size must be 1 or more, not \(batchSize)") }
    }

    func run() throws {
        do {
            let lib = try CompiledLibrary(path: library)
            guard lib.canTrain else {
                throw UserError(description: "\(library) was compiled without a loss, so it cannot be evaluated; recompile with --loss")
            }
            try checkArrayCounts(lib, x: xs, y: ys)
            let x = try xs.map { try NPY.read(path: $0) }
            let y = try ys.map { try NPY.read(path: $0) }
            let v = verbose ?? (isatty(2) != 0 ? 1 : 0)
            let e = try evaluate(lib, x: x, y: y, batchSize: batchSize, verbosity: v) {
                FileHandle.standardError.write($0.data(using: .utf8)!)
            }
            if let path = output { try (e.json() + "\n").write(toFile: path, atomically: true, encoding: .utf8) }
            print(e.line)
        } catch { fail(error) }
    }
}

/// Class ids of one output, as Keras 2's predict_classes: argmax over the last axis
/// (first maximum on ties), or, for a last axis of one unit, 1 where the value is above 0.5.
/// An output that already holds ids (int32, e.g. a CRF's decoded tags) is kept as it is.
func classIds(_ y: HostTensor) throws -> HostTensor {
    if y.dtype == .int32 { return y }
    guard let k = y.shape.last, y.shape.count >= 2 else {
        throw UserError(description: "--classes needs outputs of float scores with a class axis last, found shape \(y.shape)")
    }
    if k == 1 { return HostTensor(shape: y.shape, ints: y.floats.map { $0 > 0.5 ? 1 : 0 }) }
    let n = k == 0 ? 0 : y.count / k
    var ids = [Int32](repeating: 0, count: n)
    for r in 0..<n {
        var best = 0
        for j in 1..<k where y.floats[r * k + j] > y.floats[r * k + best] { best = j }
        ids[r] = Int32(best)
    }
    return HostTensor(shape: Array(y.shape.dropLast()), ints: ids)
}

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Draw loss curves from history files as an SVG.")
    @Argument(help: "History JSON files written by kiln fit --history.") var histories: [String]
    @Option(name: .shortAndLong, help: "The SVG file to write.") var output: String
    @Option(name: .customLong("key"), help: "Also draw this history key (accuracy, val_loss, ...); repeat for several.") var keys: [String] = []
    func run() throws {
        do {
            try LossPlot.write(histories: histories, keys: keys, to: output)
        } catch { fail(error) }
    }
}

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph",
        abstract: "Draw a model's layer graph (as Keras' plot_model does), or its primitive graph after a pass.",
        discussion: "The format follows the output's extension: .svg, .png or .pdf (drawn by Graphviz's dot), or .dot (the dot text; no Graphviz needed).")
    @Argument(help: "A Keras 3 .keras file.") var model: String
    @Option(name: .shortAndLong, help: "The picture to write: model.svg, model.png, model.pdf or model.dot.") var output: String
    @Option(help: "Draw the primitive graph of predict after this pass (e.g. lower, fuse-elementwise, dce) instead of the layers.") var after: String?
    func run() throws {
        if let a = after, !GraphPlot.passNames.contains(a) {
            throw ValidationError("--after takes a pass of the predict pipeline (\(GraphPlot.passNames.joined(separator: ", "))), not '\(a)'")
        }
        do {
            let m = try Compiler.load(model)
            let dot = try after.map { GraphPlot.primitiveDot(try GraphPlot.graph(after: $0, of: m), after: $0) } ?? GraphPlot.layerDot(m)
            try GraphPlot.write(dot: dot, to: output)
        } catch { fail(error) }
    }
}

struct Vectors: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write an embedding matrix and vocabulary from word vectors, and token and tag ids from CoNLL files.",
        discussion: """
            Writes DIR/embedding.npy (float32, vocabulary x dimension), DIR/vocab.txt (line k: the word of id k-1; \
            id 0 <pad>, id 1 <unk>), and for each --conll STEM.EXT: DIR/STEM_x.npy and DIR/STEM_y.npy (int32, \
            sentences x T, padded with 0) and DIR/tags.txt (line k: the tag of id k-1; id 0 is O).
            """)
    @Argument(help: "A word-vector file: word2vec text or binary, or GloVe text.") var vectors: String
    @Option(name: .shortAndLong, help: "Output directory (created if missing).") var output: String
    @Option(help: "auto, word2vec-text, word2vec-binary or glove.") var format: String = "auto"
    @Option(name: .customLong("conll"), help: "A CoNLL file (token ... tag per line) to encode; repeat for several.") var conll: [String] = []
    @Option(name: .customLong("max-length"), help: "T, the padded length (default: the longest sentence); longer sentences are refused.") var maxLength: Int?
    @Flag(help: "Lowercase the vector file's words and the tokens.") var lowercase = false
    @Flag(help: "Keep only the vector words that occur in the --conll files.") var restrict = false
    @Option(help: "Corpus words without a vector: unknown (read as <unk>), zeros or random (rows of their own).") var missing: String = "unknown"
    @Option(name: .customLong("unknown-vector"), help: "The row of <unk>: zeros or mean (of all the file's vectors).") var unknownVector: String = "zeros"
    @Option(help: "Seed of --missing random.") var seed: UInt64 = 0

    func run() throws {
        var f: WordVectorFormat? = nil
        if format != "auto" {
            guard let known = WordVectorFormat(rawValue: format) else {
                throw ValidationError("--format takes auto, word2vec-text, word2vec-binary or glove, not '\(format)'")
            }
            f = known
        }
        var options = EmbeddingOptions(lowercase: lowercase, restrictToCorpus: restrict)
        guard let u = EmbeddingOptions.UnknownVector(rawValue: unknownVector) else {
            throw ValidationError("--unknown-vector takes zeros or mean, not '\(unknownVector)'")
        }
        options.unknownVector = u
        switch missing {
        case "unknown": options.missingWords = .unknown
        case "zeros": options.missingWords = .zeros
        case "random": options.missingWords = .random(seed: seed)
        default: throw ValidationError("--missing takes unknown, zeros or random, not '\(missing)'")
        }
        if conll.isEmpty && (restrict || missing != "unknown") {
            throw ValidationError("--restrict and --missing need at least one --conll file")
        }
        if let t = maxLength, t < 1 { throw ValidationError("--max-length must be 1 or more, not \(t)") }
        do {
            let report = try VectorExport.run(vectors: vectors, output: output, format: f, conll: conll, maxLength: maxLength, options: options)
            for d in report.vectors.duplicates.prefix(1) {
                let more = report.vectors.duplicates.count > 1 ? " (\(report.vectors.duplicates.count) repeated words in all)" : ""
                FileHandle.standardError.write("kiln: warning: \(vectors), \(d.location): '\(d.word)' appears again; the first vector is kept, as gensim does\(more).\n".data(using: .utf8)!)
            }
            print(report.summary)
        } catch { fail(error) }
    }
}

// Usage errors exit 2 (the contract), user errors 1, success 0.
do {
    var command = try KilnCommand.parseAsRoot()
    try command.run()
} catch {
    let code = KilnCommand.exitCode(for: error)
    let message = KilnCommand.fullMessage(for: error)
    if code == .success {
        print(message)
        exit(0)
    }
    FileHandle.standardError.write((message + "\n").data(using: .utf8)!)
    exit(2)
}
