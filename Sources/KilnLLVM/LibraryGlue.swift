// The per-model C glue file and public header of a compiled library.
//
// `kiln compile` emits an object file with NAME__predict, NAME__train,
// NAME__evaluate and NAME__init_state (see Runtime/kiln_abi.h); LibraryGlue
// writes the C that describes that object to the runtime (the
// kiln_model_desc and the kiln_api table behind kiln_entry()) and NAME.h,
// the header C programs include. Pure text generation; LibraryLinker
// (LibraryLinker.swift) compiles and links the result.

import CKilnABI
import Foundation
import KilnSupport

/// One model input, output or training target as the library exchanges it.
public struct GlueTensor: Sendable, Equatable {
    /// The Keras name (any text; made a C identifier where C needs one).
    public var name: String
    /// "f32" or "i32".
    public var dtype: String
    /// Row-major shape; -1 for the batch (first) and any other free dimension.
    public var shape: [Int]

    public init(name: String, dtype: String = "f32", shape: [Int]) {
        self.name = name; self.dtype = dtype; self.shape = shape
    }
}

/// One weight, in Keras `get_weights()` order, and where it lives in the state.
public struct GlueWeight: Sendable, Equatable {
    /// e.g. "dense_1/kernel".
    public var name: String
    public var shape: [Int]
    /// Byte offset into the state block.
    public var offset: Int
    public var trainable: Bool

    public init(name: String, shape: [Int], offset: Int, trainable: Bool = true) {
        self.name = name; self.shape = shape; self.offset = offset; self.trainable = trainable
    }

    /// Number of float32 elements.
    public var count: Int { shape.reduce(1, *) }
}

/// Everything the glue and the header say about one compiled model.
public struct GlueModel: Sendable, Equatable {
    /// NAME: a C identifier, the prefix of every public symbol.
    public var name: String
    public var inputs: [GlueTensor]
    public var outputs: [GlueTensor]
    /// One per output when the model trains; empty otherwise.
    public var targets: [GlueTensor]
    public var weights: [GlueWeight]
    /// Bytes of state: weights, then optimizer slots.
    public var stateBytes: Int
    /// Bytes of the initial state image stored in the library (its trailing zeros are not).
    public var initStateBytes: Int
    public var predictArenaPerSample: Int
    public var predictArenaFixed: Int
    public var trainArenaPerSample: Int
    public var trainArenaFixed: Int
    /// Whether the object file defines NAME__train and NAME__evaluate.
    public var hasTraining: Bool
    /// The inputs' axis 1 is a free number of time steps, given with each call (the _seq functions).
    public var freeSteps = false
    /// Arena bytes per row-step and per step (free-step models).
    public var predictArenaPerRowStep = 0, predictArenaPerStep = 0
    public var trainArenaPerRowStep = 0, trainArenaPerStep = 0
    /// e.g. "mean_squared_error".
    public var loss: String
    /// e.g. "SGD".
    public var optimizer: String
    /// Metrics a training step reports (Keras history names, e.g. "accuracy").
    public var metrics: [String] = []
    /// What NAME_info() reports: the Kiln version that compiled the library and the
    /// SHA-256 (hex) of the source model file's bytes ("" for a model not read from a file).
    public var kilnVersion: String = KilnVersion.string
    public var sourceSHA256: String = ""
    /// Stateful recurrent layers: the (offset, bytes) ranges of the state they carry between
    /// calls, flattened, and the batch size they need (0: no carried state).
    public var carried: [Int] = []
    public var fixedBatch = 0

    public init(name: String, inputs: [GlueTensor], outputs: [GlueTensor], targets: [GlueTensor] = [],
                weights: [GlueWeight], stateBytes: Int,
                predictArenaPerSample: Int = 0, predictArenaFixed: Int = 0,
                trainArenaPerSample: Int = 0, trainArenaFixed: Int = 0,
                hasTraining: Bool, loss: String = "", optimizer: String = "") {
        self.name = name; self.inputs = inputs; self.outputs = outputs; self.targets = targets
        self.weights = weights; self.stateBytes = stateBytes; self.initStateBytes = stateBytes
        self.predictArenaPerSample = predictArenaPerSample; self.predictArenaFixed = predictArenaFixed
        self.trainArenaPerSample = trainArenaPerSample; self.trainArenaFixed = trainArenaFixed
        self.hasTraining = hasTraining; self.loss = loss; self.optimizer = optimizer
    }
}

/// A GlueModel that cannot be turned into a library; the message is one sentence.
public struct GlueError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum LibraryGlue {
    /// Must match KILN_MAX_RANK in kiln_abi.h.
    public static let maxRank = Int(KILN_MAX_RANK)

    // MARK: - Validation

    /// Throws when `m` cannot be described to the runtime (a bad name, dtype,
    /// rank, weight placement or missing targets).
    public static func validate(_ m: GlueModel) throws {
        guard m.name == cIdentifier(m.name) else {
            throw GlueError("model name '\(m.name)' is not a C identifier; use '\(cIdentifier(m.name))'.")
        }
        guard !m.inputs.isEmpty, !m.outputs.isEmpty else {
            throw GlueError("model '\(m.name)' needs at least one input and one output.")
        }
        if m.hasTraining && m.targets.count != m.outputs.count {
            throw GlueError("model '\(m.name)' trains but has \(m.targets.count) targets for \(m.outputs.count) outputs.")
        }
        for (role, list) in [("input", m.inputs), ("output", m.outputs), ("target", m.targets)] {
            for t in list {
                guard dtypeConstant(t.dtype) != nil else {
                    throw GlueError("\(role) '\(t.name)' has dtype '\(t.dtype)'; a library exchanges only f32 and i32.")
                }
                guard (1...maxRank).contains(t.shape.count) else {
                    throw GlueError("\(role) '\(t.name)' has rank \(t.shape.count); it must be 1 to \(maxRank) (the batch first).")
                }
            }
        }
        guard m.stateBytes >= 0, m.predictArenaPerSample >= 0, m.predictArenaFixed >= 0,
              m.trainArenaPerSample >= 0, m.trainArenaFixed >= 0 else {
            throw GlueError("model '\(m.name)' has a negative state or arena size.")
        }
        for (i, w) in m.weights.enumerated() {
            guard w.shape.count <= maxRank, w.shape.allSatisfy({ $0 >= 0 }) else {
                throw GlueError("weight \(i) ('\(w.name)') has shape \(shapeText(w.shape)); weights need fixed dimensions and rank at most \(maxRank).")
            }
            guard w.offset >= 0, w.offset % 4 == 0, w.offset + 4 * w.count <= m.stateBytes else {
                throw GlueError("weight \(i) ('\(w.name)') at byte \(w.offset) with \(w.count) floats lies outside the \(m.stateBytes)-byte state.")
            }
        }
    }

    // MARK: - Names and literals

    /// `s` made a C identifier: characters other than letters, digits and `_`
    /// become `_`; a leading digit (or nothing) gets a `_` in front; a C
    /// keyword gets a `_` behind.
    public static func cIdentifier(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            let ok = (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") || (u >= "0" && u <= "9") || u == "_"
            out.unicodeScalars.append(ok ? u : "_")
        }
        if out.isEmpty || out.unicodeScalars.first!.properties.numericType != nil { out = "_" + out }
        if cKeywords.contains(out) { out += "_" }
        return out
    }

    static let cKeywords: Set<String> = [
        "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
        "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
        "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
        "volatile", "while", "bool", "true", "false", "alignas", "alignof", "nullptr", "static_assert",
        "thread_local", "typeof", "class", "delete", "new", "this", "template", "namespace", "operator",
        "private", "protected", "public", "virtual", "friend", "try", "catch", "throw", "using",
    ]

    /// A C string literal holding `s` (UTF-8; quotes, backslashes and
    /// non-printable bytes escaped in octal).
    static func cString(_ s: String) -> String {
        var out = "\""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out += "\\\""
            case UInt8(ascii: "\\"): out += "\\\\"
            case UInt8(ascii: "?"): out += "\\?"   // no trigraphs
            case 0x20...0x7E: out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let o = String(b, radix: 8)
                out += "\\" + String(repeating: "0", count: 3 - o.count) + o
            }
        }
        return out + "\""
    }

    /// `s` safe inside a /* */ comment on one line.
    static func commentText(_ s: String) -> String {
        var t = s.replacingOccurrences(of: "*/", with: "* /").replacingOccurrences(of: "/*", with: "/ *")
        t = String(t.map { $0.isNewline ? " " : $0 })
        return t
    }

    /// (-1, 28, 28, 1) as Python prints shapes; (2,) for rank 1.
    static func shapeText(_ shape: [Int]) -> String {
        shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    }

    static func dtypeConstant(_ dtype: String) -> String? {
        switch dtype {
        case "f32", "float32": return "KILN_F32"
        case "i32", "int32": return "KILN_I32"
        default: return nil
        }
    }

    static func cType(_ dtype: String) -> String { dtypeConstant(dtype) == "KILN_I32" ? "int32_t" : "float" }

    /// Unique C parameter names: prefix + identifier, `_2`, `_3`, ... on clashes.
    static func parameterNames(_ groups: [(prefix: String, tensors: [GlueTensor])]) -> [[String]] {
        var used: Set<String> = ["m", "n", "loss", "inputs", "outputs", "x", "y"]
        return groups.map { g in
            g.tensors.map { t in
                let base = g.prefix + cIdentifier(t.name).trimmingLeadingUnderscores()
                var name = base, k = 2
                while used.contains(name) { name = "\(base)_\(k)"; k += 1 }
                used.insert(name)
                return name
            }
        }
    }

    // MARK: - NAME.h

    /// The public header NAME.h.
    public static func header(_ m: GlueModel) -> String {
        let n = m.name
        let guardName = "KILN_\(n)_H"   // not uppercased: models "a" and "A" may meet
        let p = parameterNames([("in_", m.inputs), ("out_", m.outputs)])
        let t = parameterNames([("in_", m.inputs), ("target_", m.targets)])
        let predictParams = zip(m.inputs, p[0]).map { "const \(cType($0.dtype)) *\($1)" }
            + zip(m.outputs, p[1]).map { "\(cType($0.dtype)) *\($1)" }
        let trainParams = zip(m.inputs, t[0]).map { "const \(cType($0.dtype)) *\($1)" }
            + zip(m.targets, t[1]).map { "const \(cType($0.dtype)) *\($1)" }

        var s = "/* \(n).h: generated by kiln compile; do not edit.\n *\n"
        s += " * Model \(n), compiled by Kiln into lib\(n).so. Link: cc app.c -L DIR -l\(n)\n"
        s += " * (add -Wl,-rpath,DIR or set LD_LIBRARY_PATH to run it).\n *\n"
        s += " * Arrays are row-major with n rows; in shapes, -1 is the batch (n) or\n"
        s += " * another free dimension.\n"
        s += tensorTable(" * Inputs", m.inputs, params: p[0])
        s += tensorTable(" * Outputs", m.outputs, params: p[1])
        if m.hasTraining {
            s += tensorTable(" * Targets for training (one per output)", m.targets, params: t[1])
            s += " *\n * Loss: \(commentText(m.loss.isEmpty ? "(none)" : m.loss)). "
            s += "Optimizer: \(commentText(m.optimizer.isEmpty ? "(none)" : m.optimizer)).\n"
        } else {
            s += " *\n * This library was compiled without a training step: \(n)_train_step and\n"
            s += " * \(n)_evaluate return -1.\n"
        }
        s += " *\n * Weights (float32), in Keras get_weights() order:\n"
        if m.weights.isEmpty { s += " *   (none)\n" }
        let nameWidth = min(40, m.weights.map { commentText($0.name).count }.max() ?? 0)
        for (i, w) in m.weights.enumerated() {
            s += " *   \(pad(String(i), 3)) \(pad(commentText(w.name), nameWidth))  "
            s += "\(pad(shapeText(w.shape), 16)) \(pad(String(w.count), 8)) \(w.trainable ? "trainable" : "non-trainable")\n"
        }
        s += " *\n * Functions returning int return 0 on success and -1 on error; then\n"
        s += " * \(n)_last_error(m) holds the error in one sentence. An instance is used\n"
        s += " * by one thread at a time; separate instances are independent. A call\n"
        s += " * made while another thread is inside a call on the same instance is\n"
        s += " * refused (-1; \(n)_last_error(m) on the refused thread says it is busy).\n */\n"
        s += "#ifndef \(guardName)\n#define \(guardName)\n#include <stdint.h>\n\n"
        s += "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
        s += "typedef struct \(n)_model \(n)_model;\n"
        s += "struct kiln_api;\n\n"
        s += "#define \(n)_NUM_INPUTS \(m.inputs.count)\n"
        s += "#define \(n)_NUM_OUTPUTS \(m.outputs.count)\n"
        s += "#define \(n)_NUM_WEIGHTS \(m.weights.count)\n\n"
        s += """
        /* A new instance holding the weights embedded in the library; NULL when
         * out of memory (\(n)_last_error(NULL) says why). */
        \(n)_model *\(n)_create(void);
        /* Frees an instance; NULL is ignored. */
        void \(n)_destroy(\(n)_model *m);

        /* Forward pass (inference: dropout off) over n rows, in chunks of the
         * reserved capacity; never allocates.\(m.freeSteps ? " This model takes sequences of any\n         * length (axis 1 of the inputs is free): use the _seq functions below." : "") */
        int \(n)_predict(\(n)_model *m, \((predictParams + ["int64_t n"]).joined(separator: ", ")));
        /* The same with arrays of \(m.inputs.count) input and \(m.outputs.count) output pointers. */
        int \(n)_predict_v(\(n)_model *m, const void *const *inputs, void *const *outputs, int64_t n);
        /* Makes predict (and train steps up to that batch size) hold `rows` rows
         * without further allocation. */
        int \(n)_reserve(\(n)_model *m, int64_t rows);
        /* Calls for sequences of `steps` time steps (axis 1 of every input, and of sequence
         * outputs and targets, has that length; the -1 after the batch in the shapes above).
         * Models with a fixed number of steps accept steps = 0. A call with more steps than
         * the arena was sized for grows it once. */
        int \(n)_predict_seq(\(n)_model *m, \((predictParams + ["int64_t n", "int64_t steps"]).joined(separator: ", ")));
        int \(n)_predict_seq_v(\(n)_model *m, const void *const *inputs, void *const *outputs, int64_t n, int64_t steps);
        int \(n)_train_step_seq_v(\(n)_model *m, const void *const *x, const void *const *y, int64_t n, int64_t steps, float *loss);
        int \(n)_evaluate_seq_v(\(n)_model *m, const void *const *x, const void *const *y, int64_t n, int64_t steps, float *loss);

        /* One optimizer step on one batch of n rows; *loss (may be NULL) gets
         * the batch loss computed before the update (NaN or inf as computed).
         * A batch larger than reserved allocates once. */
        int \(n)_train_step(\(n)_model *m, \((trainParams + ["int64_t n", "float *loss"]).joined(separator: ", ")));
        /* The same with arrays of input pointers and target pointers. */
        int \(n)_train_step_v(\(n)_model *m, const void *const *x, const void *const *y, int64_t n, float *loss);
        /* The loss on one batch without an update (not counted as a step). */
        int \(n)_evaluate(\(n)_model *m, \((trainParams + ["int64_t n", "float *loss"]).joined(separator: ", ")));
        int \(n)_evaluate_v(\(n)_model *m, const void *const *x, const void *const *y, int64_t n, float *loss);

        /* Number of weights (\(m.weights.count)); -1 for a NULL instance. */
        int64_t \(n)_num_weights(const \(n)_model *m);
        /* Copies weight `index` to/from `count` floats; count must equal the
         * weight's element count listed above. */
        int \(n)_get_weight(\(n)_model *m, int index, float *dst, int64_t count);
        int \(n)_set_weight(\(n)_model *m, int index, const float *src, int64_t count);

        /* Saves the whole state (weights, optimizer slots, step count, seed) to
         * a file with a header naming the model and a checksum: written to
         * `path.tmp.<pid>.<n>`, synced, renamed over path, the folder synced.
         * A save cut off by a crash leaves path as it was (the old file, whole);
         * the next save removes the temporary files such saves left. */
        int \(n)_save_weights(\(n)_model *m, const char *path);
        /* Loads a file saved by \(n)_save_weights; on any error (wrong model,
         * truncated, corrupted) the instance is left unchanged. */
        int \(n)_load_weights(\(n)_model *m, const char *path);

        /* Seed of the dropout RNG (default 0); each step derives its own. */
        void \(n)_set_seed(\(n)_model *m, uint64_t seed);
        /* Threads m's calls use for large matrix products and loops: 1 to 64, or 0
         * for the default ($KILN_NUM_THREADS, else the number of online CPUs).
         * Results are bit-identical whatever the count. The library's pool threads
         * start here or in create, never inside a call. */
        int \(n)_set_num_threads(\(n)_model *m, int threads);
        /* on = 1: predict, train_step and evaluate first check every float input
         * (and target) for NaN and infinities and fail with an error naming the
         * tensor and the row (e.g. "input 'x' row 3 holds NaN ..."); 0: no
         * check (the default). */
        int \(n)_set_check_inputs(\(n)_model *m, int on);
        /* Clears to zeros the state that stateful recurrent layers carry from one predict or
         * train call to the next (Keras' reset_states()); nothing for other models.\(m.carried.isEmpty ? "" : "\n         * This model has stateful layers: every call takes exactly \(m.fixedBatch) rows.") */
        int \(n)_reset_states(\(n)_model *m);
        /* Optimizer steps taken so far; -1 for a NULL instance. */
        int64_t \(n)_iterations(const \(n)_model *m);
        /* The last error of m ("" after a successful call); with m == NULL, the
         * last error of this thread that had no instance (e.g. from create). */
        const char *\(n)_last_error(const \(n)_model *m);
        /* Copies the \(m.metrics.count) metric value(s) of the last train/evaluate step\(m.metrics.isEmpty ? "" : " (" + m.metrics.joined(separator: ", ") + ", batch means)"). */
        int \(n)_last_metrics(const \(n)_model *m, float *dst, int count);

        /* The name-free description and call table (see kiln_abi.h); the same
         * table as kiln_entry(). */
        const struct kiln_api *\(n)_describe(void);

        /* What built this library (static strings, never NULL): the Kiln version, the
         * model's name and the SHA-256 (64 hex digits) of the source model file's bytes
         * ("" when the model was not read from a file). */
        typedef struct \(n)_info_t {
            const char *kiln_version;
            const char *model;
            const char *source_sha256;
        } \(n)_info_t;
        const \(n)_info_t *\(n)_info(void);

        #ifdef __cplusplus
        }
        #endif
        #endif

        """
        return s
    }

    static func tensorTable(_ title: String, _ list: [GlueTensor], params: [String]) -> String {
        var s = " *\n\(title):\n"
        let width = min(32, list.map { commentText($0.name).count }.max() ?? 0)
        for (i, t) in list.enumerated() {
            let dt = dtypeConstant(t.dtype) == "KILN_I32" ? "i32" : "f32"
            s += " *   \(pad(String(i), 3)) \(pad(commentText(t.name), width))  \(dt)  "
            s += "\(pad(shapeText(t.shape), 20)) parameter \(params[i])\n"
        }
        return s
    }

    static func pad(_ s: String, _ w: Int) -> String {
        s.count >= w ? s : s + String(repeating: " ", count: w - s.count)
    }

    // MARK: - NAME_glue.c

    /// The C glue file: the model's kiln_model_desc, its kiln_api table
    /// (kiln_entry, NAME_describe) and the NAME_* wrappers of NAME.h.
    public static func glueC(_ m: GlueModel) -> String {
        let n = m.name
        let p = parameterNames([("in_", m.inputs), ("out_", m.outputs)])
        let t = parameterNames([("in_", m.inputs), ("target_", m.targets)])
        let predictParams = (zip(m.inputs, p[0]).map { "const \(cType($0.dtype)) *\($1)" }
            + zip(m.outputs, p[1]).map { "\(cType($0.dtype)) *\($1)" } + ["int64_t n"]).joined(separator: ", ")
        var s = "/* \(n)_glue.c: generated by kiln compile; do not edit.\n"
        s += " * Describes the generated code of model \(n) to the Kiln runtime. */\n"
        s += "#include \"kiln_runtime.h\"\n#include \"\(n).h\"\n\n"
        s += "/* Generated code (the object file); hidden so that only the API below\n"
        s += " * leaves the library. */\n"
        s += "KILN_HIDDEN extern void \(n)__predict(float *arena, float *state, const void *const *inputs,\n"
        s += "                                     void *const *outputs, int64_t n, int64_t steps);\n"
        if m.hasTraining {
            s += "KILN_HIDDEN extern float \(n)__train(float *arena, float *state, const void *const *inputs,\n"
            s += "                                   int64_t n, const kiln_step_info *info);\n"
            s += "KILN_HIDDEN extern float \(n)__evaluate(float *arena, float *state, const void *const *inputs,\n"
            s += "                                      int64_t n, const kiln_step_info *info);\n"
        }
        s += "KILN_HIDDEN extern const unsigned char \(n)__init_state[];\n\n"

        s += tensorArray("\(n)__inputs", m.inputs)
        s += tensorArray("\(n)__outputs", m.outputs)
        if m.hasTraining { s += tensorArray("\(n)__targets", m.targets) }
        if !m.weights.isEmpty {
            s += "static const kiln_weight_desc \(n)__weights[\(m.weights.count)] = {\n"
            for w in m.weights {
                s += "    { \(cString(w.name)), \(w.shape.count), { \(dims(w.shape)) }, \(w.offset), \(w.count), \(w.trainable ? 1 : 0) },\n"
            }
            s += "};\n\n"
        }
        if !m.metrics.isEmpty {
            s += "static const char *const \(n)__metric_names[] = { " + m.metrics.map(cString).joined(separator: ", ") + " };\n\n"
        }
        if !m.carried.isEmpty {
            s += "static const int64_t \(n)__carried[\(m.carried.count)] = { " + m.carried.map(String.init).joined(separator: ", ") + " };\n\n"
        }
        s += """
        static const kiln_model_desc \(n)__desc = {
            .abi_version = KILN_ABI_VERSION,
            .name = \(cString(n)),
            .num_inputs = \(m.inputs.count),
            .num_outputs = \(m.outputs.count),
            .num_weights = \(m.weights.count),
            .inputs = \(n)__inputs,
            .outputs = \(n)__outputs,
            .targets = \(m.hasTraining ? "\(n)__targets" : "NULL"),
            .weights = \(m.weights.isEmpty ? "NULL" : "\(n)__weights"),
            .state_bytes = \(m.stateBytes),
            .init_state = \(n)__init_state,
            .init_state_bytes = \(m.initStateBytes),
            .predict_arena_per_sample = \(m.predictArenaPerSample),
            .predict_arena_fixed = \(m.predictArenaFixed),
            .train_arena_per_sample = \(m.trainArenaPerSample),
            .train_arena_fixed = \(m.trainArenaFixed),
            .free_steps = \(m.freeSteps ? 1 : 0),
            .predict_arena_per_row_step = \(m.predictArenaPerRowStep),
            .predict_arena_per_step = \(m.predictArenaPerStep),
            .train_arena_per_row_step = \(m.trainArenaPerRowStep),
            .train_arena_per_step = \(m.trainArenaPerStep),
            .fixed_batch = \(m.fixedBatch),
            .num_carried = \(m.carried.count / 2),
            .carried = \(m.carried.isEmpty ? "NULL" : "\(n)__carried"),
            .predict = \(n)__predict,
            .train = \(m.hasTraining ? "\(n)__train" : "NULL"),
            .evaluate = \(m.hasTraining ? "\(n)__evaluate" : "NULL"),
            .loss = \(cString(m.loss)),
            .optimizer = \(cString(m.optimizer)),
            .num_metrics = \(m.metrics.count),
            .metric_names = \(m.metrics.isEmpty ? "NULL" : "\(n)__metric_names"),
        };

        static const kiln_api \(n)__api = KILN_API_INIT(&\(n)__desc);

        KILN_EXPORT const kiln_api *kiln_entry(void) { return &\(n)__api; }
        KILN_EXPORT const struct kiln_api *\(n)_describe(void) { return &\(n)__api; }

        #define KILN_I(m) ((kiln_instance *)(m))
        #define KILN_CI(m) ((const kiln_instance *)(m))

        KILN_EXPORT \(n)_model *\(n)_create(void) { return (\(n)_model *)kiln_create(&\(n)__desc); }
        KILN_EXPORT void \(n)_destroy(\(n)_model *m) { kiln_destroy(KILN_I(m)); }

        KILN_EXPORT int \(n)_predict(\(n)_model *m, \(predictParams)) {
            const void *const inputs[\(m.inputs.count)] = { \(p[0].joined(separator: ", ")) };
            void *const outputs[\(m.outputs.count)] = { \(p[1].joined(separator: ", ")) };
            return kiln_predict(KILN_I(m), inputs, outputs, n);
        }
        KILN_EXPORT int \(n)_predict_v(\(n)_model *m, const void *const *inputs, void *const *outputs, int64_t n) {
            return kiln_predict(KILN_I(m), inputs, outputs, n);
        }
        KILN_EXPORT int \(n)_reserve(\(n)_model *m, int64_t rows) { return kiln_reserve(KILN_I(m), rows); }
        KILN_EXPORT int \(n)_predict_seq(\(n)_model *m, \(predictParams), int64_t steps) {
            const void *const inputs[\(m.inputs.count)] = { \(p[0].joined(separator: ", ")) };
            void *const outputs[\(m.outputs.count)] = { \(p[1].joined(separator: ", ")) };
            return kiln_predict_steps(KILN_I(m), inputs, outputs, n, steps);
        }
        KILN_EXPORT int \(n)_predict_seq_v(\(n)_model *m, const void *const *inputs, void *const *outputs, int64_t n, int64_t steps) {
            return kiln_predict_steps(KILN_I(m), inputs, outputs, n, steps);
        }


        """
        let trainParams = (zip(m.inputs, t[0]).map { "const \(cType($0.dtype)) *\($1)" }
            + zip(m.targets, t[1]).map { "const \(cType($0.dtype)) *\($1)" } + ["int64_t n", "float *loss"])
            .joined(separator: ", ")
        for (fn, rt) in [("train_step", "kiln_train_step"), ("evaluate", "kiln_evaluate")] {
            s += "KILN_EXPORT int \(n)_\(fn)(\(n)_model *m, \(trainParams)) {\n"
            s += "    const void *const x[\(m.inputs.count)] = { \(t[0].joined(separator: ", ")) };\n"
            if m.hasTraining {
                s += "    const void *const y[\(m.targets.count)] = { \(t[1].joined(separator: ", ")) };\n"
                s += "    return \(rt)(KILN_I(m), x, y, n, loss);\n}\n"
            } else {
                s += "    return \(rt)(KILN_I(m), x, NULL, n, loss);\n}\n"
            }
            s += "KILN_EXPORT int \(n)_\(fn)_v(\(n)_model *m, const void *const *x, const void *const *y, int64_t n, float *loss) {\n"
            s += "    return \(rt)(KILN_I(m), x, y, n, loss);\n}\n"
            s += "KILN_EXPORT int \(n)_\(fn)_seq_v(\(n)_model *m, const void *const *x, const void *const *y, int64_t n, int64_t steps, float *loss) {\n"
            s += "    return \(rt)_steps(KILN_I(m), x, y, n, steps, loss);\n}\n"
        }
        s += """

        KILN_EXPORT int64_t \(n)_num_weights(const \(n)_model *m) { return kiln_num_weights(KILN_CI(m)); }
        KILN_EXPORT int \(n)_get_weight(\(n)_model *m, int index, float *dst, int64_t count) {
            return kiln_get_weight(KILN_I(m), index, dst, count);
        }
        KILN_EXPORT int \(n)_set_weight(\(n)_model *m, int index, const float *src, int64_t count) {
            return kiln_set_weight(KILN_I(m), index, src, count);
        }
        KILN_EXPORT int \(n)_save_weights(\(n)_model *m, const char *path) { return kiln_save_weights(KILN_I(m), path); }
        KILN_EXPORT int \(n)_load_weights(\(n)_model *m, const char *path) { return kiln_load_weights(KILN_I(m), path); }
        KILN_EXPORT void \(n)_set_seed(\(n)_model *m, uint64_t seed) { kiln_set_seed(KILN_I(m), seed); }
        KILN_EXPORT int \(n)_set_num_threads(\(n)_model *m, int threads) { return kiln_set_num_threads(KILN_I(m), threads); }
        KILN_EXPORT int \(n)_set_check_inputs(\(n)_model *m, int on) { return kiln_set_check_inputs(KILN_I(m), on); }
        KILN_EXPORT int \(n)_reset_states(\(n)_model *m) { return kiln_reset_states(KILN_I(m)); }
        KILN_EXPORT int64_t \(n)_iterations(const \(n)_model *m) { return kiln_iterations(KILN_CI(m)); }
        KILN_EXPORT const char *\(n)_last_error(const \(n)_model *m) { return kiln_last_error(KILN_CI(m)); }
        KILN_EXPORT int \(n)_last_metrics(const \(n)_model *m, float *dst, int count) { return kiln_last_metrics(KILN_CI(m), dst, count); }

        static const \(n)_info_t \(n)__info = { \(cString(m.kilnVersion)), \(cString(n)), \(cString(m.sourceSHA256)) };
        KILN_EXPORT const \(n)_info_t *\(n)_info(void) { return &\(n)__info; }

        """
        return s
    }

    static func dims(_ shape: [Int]) -> String {
        shape.isEmpty ? "0" : shape.map(String.init).joined(separator: ", ")
    }

    static func tensorArray(_ symbol: String, _ list: [GlueTensor]) -> String {
        var s = "static const kiln_tensor_desc \(symbol)[\(list.count)] = {\n"
        for t in list {
            s += "    { \(cString(t.name)), \(dtypeConstant(t.dtype) ?? "KILN_F32"), \(t.shape.count), { \(dims(t.shape)) } },\n"
        }
        return s + "};\n\n"
    }
}

extension String {
    fileprivate func trimmingLeadingUnderscores() -> String {
        let t = drop(while: { $0 == "_" })
        return t.isEmpty ? self : String(t)
    }
}
