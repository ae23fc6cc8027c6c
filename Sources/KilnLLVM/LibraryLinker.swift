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
    /// The C compiler arguments that link libNAME.so (after `cc`).
    /// - Parameters:
    ///   - objectPath: the object file with NAME__predict, NAME__train, NAME__evaluate, NAME__init_state.
    ///   - gluePath: the generated NAME_glue.c; its folder must hold NAME.h too.
    ///   - runtimeDir: the folder with kiln_runtime.c, kiln_runtime.h and kiln_abi.h.
    ///   - output: where cc writes the library.
    public static func ccArguments(name: String, objectPath: String, gluePath: String, runtimeDir: String,
                                   output: String) -> [String] {
        let glueDir = URL(fileURLWithPath: gluePath).deletingLastPathComponent().path
        // The runtime's kernels (kiln_gemm.c) are built for this machine, like the model's code.
        return ["-shared", "-fPIC", "-O3", "-march=native", "-fvisibility=hidden",
                "-I", runtimeDir, "-I", glueDir,
                objectPath, gluePath, runtimeDir + "/kiln_runtime.c", runtimeDir + "/kiln_scan.c", runtimeDir + "/kiln_gemm.c", runtimeDir + "/kiln_conv.c",
                "-lopenblas", "-lm", "-Wl,-Bsymbolic", "-Wl,-soname,lib\(name).so",
                "-o", output]
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
        for f in ["kiln_runtime.c", "kiln_scan.c", "kiln_gemm.c", "kiln_conv.c", "kiln_runtime.h", "kiln_abi.h"] where !fm.fileExists(atPath: runtimeDir + "/" + f) {
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
                               output: temp)
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

    /// The C compiler: `cc` on PATH (else gcc, clang).
    public static func findCompiler() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
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
