// pad compiled the whole way (one loop kernel: the input where the index along the
// axis falls inside it, the value elsewhere) against the float64 interpreter.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnReference
import KilnRuntime

final class PadTests: XCTestCase {
    func testPadAgainstTheInterpreter() throws {
        var r = TestRNG(31)
        let n = 5
        // (per-sample shape, axis, before, after, value)
        let cases: [([Int], Int, Int, Int, Float)] = [
            ([7], 1, 2, 3, 0), ([4, 6], 1, 1, 0, -1.5), ([4, 6], 2, 0, 2, 0.25), ([3, 4, 2], 2, 3, 3, 0), ([3, 4, 2], 3, 1, 1, 2),
            ([2, 3], 1, 0, 0, 7),
        ]
        var g = Graph(name: "pads")
        var feeds: [[Float]] = []
        for (k, (shape, axis, before, after, value)) in cases.enumerated() {
            let x = g.addInput("x\(k)", .f32([.n] + shape.map { .fixed($0) }))
            // A producer and a consumer, so the pad sits between two fused loops.
            let t = try g.prim(.unary(.tanh), x, layer: "in\(k)")
            let p = try g.prim(.pad(axis: axis, before: before, after: after, value: value), t, layer: "pad\(k)")
            g.addOutput(try g.prim(.binary(.mul), p, try g.prim(.constant(2), layer: "two\(k)"), layer: "out\(k)"), name: "y\(k)")
            feeds.append(r.floats(n * shape.reduce(1, *)))
        }
        let lib = try compileAndLoad(Model(graph: g, layers: [], training: nil, isSequential: false), name: "pads", dir: try makeTempDir(self))
        let got = try lib.predict(zip(feeds, cases).map { HostTensor(shape: [n] + $1.0, floats: $0) })
        let want = try Interpreter.run(g, inputs: feeds.map { $0.map(Double.init) }, n: n)
        for (k, v) in g.outputs.enumerated() {
            assertClose(got[k].floats, want[v]!, "pad case \(k) (\(g.type(v)))")
        }
    }
}
