import ArgumentParser
import Foundation
import Kiln
import KilnIR
import KilnLLVM
import KilnPasses
import KilnRuntime

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
        subcommands: [Summary.self, Compile.self, Predict.self, Fit.self, Plot.self, Vectors.self])
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
            let n = name.map { Compiler.identifier($0) } ?? Compiler.defaultName(model)
            let a = try Compiler.compile(m, name: n, to: output, options: o) { print($0) }
            if swiftModule { try SwiftModuleWriter.write(name: n, outDir: output) }
            print("wrote \(a.library) and \(a.header)")
        } catch { fail(error) }
    }
}

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a compiled library's forward pass on .npy inputs.")
    @Argument(help: "A compiled libNAME.so.") var library: String
    @Option(name: .customLong("input"), help: "An input .npy, one per model input, in order.") var inputs: [String] = []
    @Option(name: .customLong("output"), help: "An output .npy to write, one per model output.") var outputs: [String] = []
    @Option(name: .customLong("batch-size"), help: "Rows per call.") var batchSize: Int = 256

    func run() throws {
        do {
            let lib = try CompiledLibrary(path: library)
            guard inputs.count == lib.inputs.count else {
                throw UserError(description: "the model takes \(lib.inputs.count) input(s) (\(lib.inputs.map(\.name).joined(separator: ", "))), \(inputs.count) --input given")
            }
            guard outputs.count == lib.outputs.count else {
                throw UserError(description: "the model has \(lib.outputs.count) output(s) (\(lib.outputs.map(\.name).joined(separator: ", "))), \(outputs.count) --output given")
            }
            let xs = try inputs.map { try NPY.read(path: $0) }
            let ys = try lib.predict(xs, batchSize: batchSize)
            for (y, path) in zip(ys, outputs) { try NPY.write(y, path: path) }
        } catch { fail(error) }
    }
}

struct Fit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a compiled library with its compiled loss and optimizer.")
    @Argument(help: "A compiled libNAME.so.") var library: String
    @Option(name: .customLong("x"), help: "A training input .npy, one per model input.") var xs: [String] = []
    @Option(name: .customLong("y"), help: "A target .npy, one per model output.") var ys: [String] = []
    @Option(help: "Epochs.") var epochs: Int = 1
    @Option(name: .customLong("batch-size"), help: "Batch size.") var batchSize: Int = 32
    @Flag(name: .customLong("no-shuffle"), help: "Batches in row order.") var noShuffle = false
    @Option(help: "Seed for shuffling and dropout.") var seed: UInt64 = 0
    @Option(name: .customLong("save-weights"), help: "Write DIR/000.npy ... in get_weights() order after training.") var saveWeights: String?
    @Option(help: "Write {\"loss\": [...]} per epoch to this JSON file.") var history: String?

    func run() throws {
        do {
            guard epochs >= 0, batchSize > 0 else { throw UserError(description: "--epochs must be 0 or more and --batch-size 1 or more") }
            let lib = try CompiledLibrary(path: library)
            guard lib.canTrain else {
                throw UserError(description: "\(library) was compiled without a training step (its model has no loss); recompile with --loss")
            }
            guard xs.count == lib.inputs.count else {
                throw UserError(description: "the model takes \(lib.inputs.count) input(s), \(xs.count) --x given")
            }
            guard ys.count == lib.outputs.count else {
                throw UserError(description: "the model has \(lib.outputs.count) output(s), \(ys.count) --y given")
            }
            let x = try xs.map { try NPY.read(path: $0) }
            let y = try ys.map { try NPY.read(path: $0) }
            let tty = isatty(2) != 0
            let h = try fit(lib, x: x, y: y, options: FitOptions(epochs: epochs, batchSize: batchSize, shuffle: !noShuffle, seed: seed, verbose: true),
                            isTerminal: tty) { FileHandle.standardError.write($0.data(using: .utf8)!) }
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

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Draw loss curves from history files as an SVG.")
    @Argument(help: "History JSON files written by kiln fit --history.") var histories: [String]
    @Option(name: .shortAndLong, help: "The SVG file to write.") var output: String
    func run() throws {
        do {
            try LossPlot.write(histories: histories, to: output)
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
