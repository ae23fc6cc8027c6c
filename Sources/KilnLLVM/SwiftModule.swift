// The Clang module map that lets Swift programs `import NAME` a compiled
// library: DIR/module.modulemap beside DIR/NAME.h and DIR/libNAME.so.
//
//     swiftc -I DIR -L DIR -lNAME -Xlinker -rpath -Xlinker DIR main.swift

import Foundation

public enum SwiftModuleWriter {
    /// The module map entry of model NAME.
    /// - Parameters:
    ///   - name: the library name (a C identifier), also the Swift module name.
    public static func entry(name: String) -> String {
        """
        module \(name) {
            header "\(name).h"
            link "\(name)"
            export *
        }

        """
    }

    /// Writes DIR/module.modulemap declaring module NAME (header NAME.h,
    /// linking libNAME). Entries of other models already in the file are
    /// kept, so several models compiled into one folder can all be imported;
    /// an older entry for NAME is replaced. The file is replaced atomically.
    /// - Parameters:
    ///   - name: the library name (a C identifier), also the Swift module name.
    ///   - outDir: the folder holding NAME.h and libNAME.so; created when missing.
    /// - Throws: ``GlueError`` for a name that is not a C identifier, or a
    ///   file error.
    public static func write(name: String, outDir: String) throws {
        guard name == LibraryGlue.cIdentifier(name) else {
            throw GlueError("cannot write a Swift module map for '\(name)': the name is not a C identifier; use '\(LibraryGlue.cIdentifier(name))'.")
        }
        let path = outDir + "/module.modulemap"
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        let old = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let kept = topLevelBlocks(old).filter { moduleName($0) != name }
        let text = kept.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) + "\n\n" }.joined() + entry(name: name)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// The top-level `module ... { ... }` blocks of a module map, each with the
    /// text before it (comments); trailing text without a block is dropped.
    static func topLevelBlocks(_ text: String) -> [String] {
        var blocks: [String] = []
        var current = ""
        var depth = 0
        for ch in text {
            current.append(ch)
            if ch == "{" { depth += 1 }
            if ch == "}" {
                depth -= 1
                if depth == 0 { blocks.append(current); current = "" }
            }
        }
        return blocks
    }

    /// The name declared by a block (`[explicit] [framework] module NAME ... {`).
    static func moduleName(_ block: String) -> String? {
        let code = block.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).hasPrefix("//") }.joined(separator: "\n")
        let words = code.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "{" }).map(String.init)
        guard let i = words.firstIndex(of: "module"), i + 1 < words.count else { return nil }
        return words[i + 1]
    }
}
