// Builds a small model with Kiln's Swift API, compiles it into a library with
// Compiler.compile, loads the library and checks one prediction against the
// same computation written out here. Exits non-zero on any difference.
import Foundation
import Kiln
import KilnRuntime

let out = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : NSTemporaryDirectory() + "kiln-dependent"
try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)

let model = try Sequential([Dense(3, activation: .relu, name: "hidden"), Dense(2, name: "out")],
                           input: Input(shape: [4], name: "x"), name: "tiny")
let artifacts = try Compiler.compile(model.build(), name: "tiny", to: out, log: { _ in })
let lib = try CompiledLibrary(path: artifacts.library)

let x: [Float] = [0.5, -1, 2, 0.25]
let y = try lib.predict([HostTensor(shape: [1, 4], floats: x)])[0].floats
// The same forward pass by hand, from the model's own weights (kernel, bias per layer).
let w = model.layers.map(\.weights)
func dense(_ v: [Float], _ kernel: [Float], _ bias: [Float], relu: Bool) -> [Float] {
    (0..<bias.count).map { j in
        let s = (0..<v.count).reduce(bias[j]) { $0 + v[$1] * kernel[$1 * bias.count + j] }
        return relu ? max(s, 0) : s
    }
}
let want = dense(dense(x, w[0][0], w[0][1], relu: true), w[1][0], w[1][1], relu: false)
let err = zip(y, want).map { abs($0 - $1) }.max() ?? .infinity
print("compiled \(artifacts.library); predict \(y), by hand \(want), max difference \(err)")
exit(err <= 1e-5 ? 0 : 1)
