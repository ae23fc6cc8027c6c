// Rescaling's shape rule, config and values (its Keras-made case: rescaling_cnn).

import XCTest
import KilnIR
import KilnLayers
import KilnReference

final class LayersRescalingTests: XCTestCase {
    func testShapeConfigAndValues() throws {
        let k = RescalingKind(scale: 0.5, offset: -1)
        let ints = TensorType(.i32, [.n, .fixed(3)])
        XCTAssertEqual(try KindCheck(kind: k).infer([ints]), [.f32([.n, .fixed(3)])])
        XCTAssertEqual(try kerasKind("Rescaling", #"{"scale": 0.5, "offset": -1.0}"#) as? RescalingKind, k)
        XCTAssertEqual(try kerasKind("Rescaling", #"{"scale": 0.25}"#) as? RescalingKind, RescalingKind(scale: 0.25))
        refusesConfig("Rescaling", #"{"scale": [0.5, 0.25], "offset": 0.0}"#, ["layer 'L' (Rescaling)", "scale [0.5, 0.25]", "one number"])
        KindCheck(kind: k).refuses([], ["takes 1 inputs, got 0"])
        // Values through the float64 interpreter: x * 0.5 - 1.
        var g = Graph(name: "rescale")
        let x = g.addInput("x", .f32([.n, .fixed(3)]))
        var b = PrimBuilder(graph: g, layer: "r")
        var ctx = LoweringContext()
        let y = try k.lower(&b, [x], &ctx)[0]
        b.graph.outputs = [y]; b.graph.outputNames = ["y"]
        let out = try Interpreter.run(b.graph, inputs: [[2, -4, 0, 1, 3, 5]], params: [], n: 2)[y]!
        XCTAssertEqual(out, [0, -3, -1, -0.5, 0.5, 1.5])
    }
}
