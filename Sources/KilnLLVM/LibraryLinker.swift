// Links a model's object file, its generated glue and the Kiln C runtime into
// libNAME.so, and writes NAME.h beside it. Nothing half-written is left in
// the output folder: the library is linked under a temporary name and renamed.

import Foundation

/// A failed link; the message is one sentence, then the C compiler's output.
public struct LibraryLinkError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public enum LibraryLinker {
    /// The runtime's C files, compiled into every library.
    public static let runtimeSources = ["kiln_runtime.c", "kiln_scan.c", "kiln_gemm.c", "kiln_conv.c", "kiln_winograd.c", "kiln_crf.c"]
    /// The flags the runtime and the glue are compiled with: built for this machine (the runtime's
    /// products and convolutions, like the model's code), symbols hidden but the API; then the
    /// words of $KILN_CFLAGS (see ``extraCFlags``).
    static var cFlags: [String] { ["-fPIC", "-O3", "-march=native", "-fvisibility=hidden"] + extraCFlags }

    /// $KILN_CFLAGS split at blanks: flags added after Kiln's own when the runtime and the glue are
    /// compiled and the library is linked (later flags win: `-O1` or `-march=x86-64-v3` replace
    /// Kiln's). For checking builds, e.g. (tools/sanitize.sh)
    ///     KILN_CC=clang KILN_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -g -O1" kiln compile ...
    /// The runtime's object cache is keyed by them too.
    static var extraCFlags: [String] {
        (ProcessInfo.processInfo.environment["KILN_CFLAGS"] ?? "").split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
            .map(String.init)
    }

    /// The C compiler arguments that link libNAME.so (after `cc`).
    /// - Parameters:
    ///   - objectPath: the object file with NAME__predict, NAME__train, NAME__evaluate, NAME__init_state.
    ///   - gluePath: the generated NAME_glue.c; its folder must hold NAME.h too.
    ///   - runtimeDir: the folder with kiln_runtime.c, kiln_runtime.h and kiln_abi.h.
    ///   - runtimeObjects: the runtime already compiled (``runtimeObjects(runtimeDir:cc:)``); nil
    ///     compiles its sources in this command.
    ///   - output: where cc writes the library.
    public static func ccArguments(name: String, objectPath: String, gluePath: String, runtimeDir: String,
                                   runtimeObjects: [String]? = nil, output: String) -> [String] {
        let glueDir = URL(fileURLWithPath: gluePath).deletingLastPathComponent().path
        return ["-shared"] + cFlags + ["-I", runtimeDir, "-I", glueDir, objectPath, gluePath]
            + (runtimeObjects ?? runtimeSources.map { runtimeDir + "/" + $0 })
            + ["-lopenblas", "-lm", "-Wl,-Bsymbolic", "-Wl,-soname,lib\(name).so", "-o", output]
    }

    /// The runtime compiled once per machine and runtime version: object files in a cache folder
    /// ($KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else ~/.cache/kiln) named by a hash of the
    /// runtime's files, the compiler and the flags. Compiling the runtime takes longer than
    /// everything else in linking a small model. nil when no cache folder can be written.
    static func runtimeObjects(runtimeDir: String, cc: String) throws -> [String]? {
        let fm = FileManager.default
        let env = ProcessInfo.processInfo.environment
        let base = env["KILN_CACHE_DIR"] ?? env["XDG_CACHE_HOME"].map { $0 + "/kiln" } ?? env["HOME"].map { $0 + "/.cache/kiln" }
        guard let dir = base, (try? fm.createDirectory(atPath: dir, withIntermediateDirectories: true)) != nil,
              fm.isWritableFile(atPath: dir) else { return nil }
        // FNV-1a over the runtime's files, the compiler's path and the flags.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 { for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 } }
        let files = (try? fm.contentsOfDirectory(atPath: runtimeDir).filter { $0.hasSuffix(".c") || $0.hasSuffix(".h") }.sorted()) ?? []
        for f in files {
            mix(f.utf8)
            guard let data = fm.contents(atPath: runtimeDir + "/" + f) else { return nil }
            mix(data)
        }
        mix((cc + " " + cFlags.joined(separator: " ")).utf8)
        let key = String(hash, radix: 16)
        var objects: [String] = []
        for src in runtimeSources {
            let obj = dir + "/\(src.dropLast(2))-\(key).o"
            if !fm.fileExists(atPath: obj) {
                let temp = obj + ".tmp.\(getpid())"
                let (status, errText) = try run(cc, ["-c"] + cFlags + ["-I", runtimeDir, runtimeDir + "/" + src, "-o", temp])
                guard status == 0, rename(temp, obj) == 0 else {
                    try? fm.removeItem(atPath: temp)
                    throw LibraryLinkError("compiling the Kiln runtime (\(src)) failed (\(cc) exited \(status)):\n"
                        + errText.trimmingCharacters(in: .whitespacesAndNewlines))
                }
            }
            objects.append(obj)
        }
        return objects
    }

    /// Writes `outDir/libNAME.so` and `outDir/NAME.h` for `glue`.
    /// - Parameters:
    ///   - objectPath: the compiled model (see ``ccArguments``).
    ///   - glue: the model's description; `glue.name` is NAME.
    ///   - runtimeDir: the Runtime/ folder (``runtimeDirectory()``).
    ///   - outDir: created when missing.
    /// - Throws: ``GlueError`` for a model the runtime cannot describe,
    ///   ``LibraryLinkError`` (with the compiler's stderr) when linking fails.
    public static func link(objectPath: String, glue: GlueModel, runtimeDir: String, outDir: String) throws {
        try LibraryGlue.validate(glue)
        let fm = FileManager.default
        let name = glue.name
        guard fm.fileExists(atPath: objectPath) else {
            throw LibraryLinkError("cannot link lib\(name).so: the object file '\(objectPath)' does not exist.")
        }
        for f in runtimeSources + ["kiln_runtime.h", "kiln_abi.h"] where !fm.fileExists(atPath: runtimeDir + "/" + f) {
            throw LibraryLinkError("cannot link lib\(name).so: the Kiln runtime folder '\(runtimeDir)' has no \(f).")
        }
        let cc = try findCompiler()

        let work = fm.temporaryDirectory.appendingPathComponent("kiln-link-\(getpid())-\(UUID().uuidString)").path
        try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: work) }
        let header = LibraryGlue.header(glue)
        let gluePath = work + "/\(name)_glue.c"
        try header.write(toFile: work + "/\(name).h", atomically: false, encoding: .utf8)
        try LibraryGlue.glueC(glue).write(toFile: gluePath, atomically: false, encoding: .utf8)

        do {
            try fm.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        } catch {
            throw LibraryLinkError("cannot create the output folder '\(outDir)': \(error.localizedDescription)")
        }
        let final = outDir + "/lib\(name).so"
        let temp = outDir + "/.lib\(name).so.tmp.\(getpid())"
        let args = ccArguments(name: name, objectPath: objectPath, gluePath: gluePath, runtimeDir: runtimeDir,
                               runtimeObjects: try runtimeObjects(runtimeDir: runtimeDir, cc: cc), output: temp)
        let (status, errText) = try run(cc, args)
        guard status == 0 else {
            try? fm.removeItem(atPath: temp)
            let detail = errText.trimmingCharacters(in: .whitespacesAndNewlines)
            throw LibraryLinkError("linking lib\(name).so failed (\(cc) exited \(status))"
                + (detail.isEmpty ? "." : ":\n" + detail))
        }
        guard rename(temp, final) == 0 else {
            let e = String(cString: strerror(errno))
            try? fm.removeItem(atPath: temp)
            throw LibraryLinkError("cannot move the linked library to '\(final)': \(e).")
        }
        do {
            try header.write(toFile: outDir + "/\(name).h", atomically: true, encoding: .utf8)
        } catch {
            throw LibraryLinkError("cannot write '\(outDir)/\(name).h': \(error.localizedDescription)")
        }
    }

    /// The C compiler: $KILN_CC (a path, or a name looked up on PATH), else `cc` on PATH (else gcc, clang).
    public static func findCompiler() throws -> String {
        let env = ProcessInfo.processInfo.environment
        let path = env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        if let chosen = env["KILN_CC"], !chosen.isEmpty {
            if chosen.contains("/") {
                if FileManager.default.isExecutableFile(atPath: chosen) { return chosen }
            } else {
                for dir in path.split(separator: ":") where !dir.isEmpty {
                    let p = "\(dir)/\(chosen)"
                    if FileManager.default.isExecutableFile(atPath: p) { return p }
                }
            }
            throw LibraryLinkError("KILN_CC is '\(chosen)', but no such C compiler is executable (on PATH).")
        }
        for tool in ["cc", "gcc", "clang"] {
            for dir in path.split(separator: ":") where !dir.isEmpty {
                let p = "\(dir)/\(tool)"
                if FileManager.default.isExecutableFile(atPath: p) { return p }
            }
        }
        throw LibraryLinkError("no C compiler found: install one (e.g. apt-get install gcc) so that `cc` is on PATH.")
    }

    /// Runs a program to completion; returns its status and its stderr (and stdout) text.
    static func run(_ exe: String, _ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let pipe = Pipe()
        p.standardError = pipe
        p.standardOutput = pipe
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch {
            throw LibraryLinkError("cannot run the C compiler '\(exe)': \(error.localizedDescription)")
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    // MARK: - Finding Runtime/

    /// The folder holding kiln_runtime.c: $KILN_RUNTIME_DIR, else a `Runtime`
    /// (or `share/kiln/Runtime`) folder found walking up from the running
    /// executable, else the source tree this file was compiled from.
    public static func runtimeDirectory() throws -> String {
        let fm = FileManager.default
        func holdsRuntime(_ dir: String) -> Bool {
            fm.fileExists(atPath: dir + "/kiln_runtime.c") && fm.fileExists(atPath: dir + "/kiln_abi.h")
        }
        if let env = ProcessInfo.processInfo.environment["KILN_RUNTIME_DIR"], !env.isEmpty {
            guard holdsRuntime(env) else {
                throw LibraryLinkError("KILN_RUNTIME_DIR is '\(env)', but that folder has no kiln_runtime.c and kiln_abi.h.")
            }
            return env
        }
        var starts: [URL] = []
        if let exe = Bundle.main.executableURL { starts.append(exe) }
        starts.append(URL(fileURLWithPath: "/proc/self/exe"))
        if let arg0 = CommandLine.arguments.first, !arg0.isEmpty {
            if arg0.contains("/") {
                starts.append(URL(fileURLWithPath: arg0, relativeTo: URL(fileURLWithPath: fm.currentDirectoryPath)))
            } else if let found = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
                .map({ "\($0)/\(arg0)" }).first(where: { fm.isExecutableFile(atPath: $0) }) {
                starts.append(URL(fileURLWithPath: found))
            }
        }
        var seen = Set<String>()
        for start in starts {
            var dir = start.resolvingSymlinksInPath().deletingLastPathComponent()
            while seen.insert(dir.path).inserted {
                for sub in ["Runtime", "share/kiln/Runtime"] {
                    let cand = dir.appendingPathComponent(sub).path
                    if holdsRuntime(cand) { return cand }
                }
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path { break }
                dir = parent
            }
        }
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()   // Sources/KilnLLVM
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Runtime").path
        if holdsRuntime(source) { return source }
        throw LibraryLinkError("cannot find the Kiln runtime (Runtime/kiln_runtime.c) beside the kiln executable or in '\(source)'; set KILN_RUNTIME_DIR to the Runtime folder.")
    }
}
