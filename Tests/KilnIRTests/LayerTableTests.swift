// The layer table: its invariants, and the shape rules and refusals of its layers
// (each layer's Keras-made cases in Tests/cases check predict and fit end to end).

import XCTest
import KilnIR
import KilnLayers
import KilnPasses
import KilnSupport

private func f32(_ dims: Dim...) -> TensorType { .f32(dims) }
private func fx(_ k: Int) -> Dim { .fixed(k) }

/// Shape-rule checks of a layer kind, as Kiln calls them: data inputs, then the weights the
/// kind asks for.
struct KindCheck {
    var kind: any LayerKind
    var name = "L"

    /// The output types for these data inputs.
    func infer(_ ins: [TensorType]) throws -> [TensorType] {
        let w = try kind.weights(for: ins).map { TensorType.f32($0.shape.map { .fixed($0) }) }
        return try inferTypes(.layer(kind.op), ins + w, layer: name)
    }

    /// Asserts the layer refuses these inputs with a message holding every fragment.
    func refuses(_ ins: [TensorType], _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try infer(ins), file: file, line: line) { e in
            let text = "\(e)"
            for f in fragments { XCTAssertTrue(text.contains(f), "'\(f)' not in: \(text)", file: file, line: line) }
        }
    }
}

/// A kind read from a Keras config (JSON text), as the importer reads it.
func kerasKind(_ cls: String, _ config: String, name: String = "L") throws -> any LayerKind {
    guard let type = LayerTable.byKerasClass[cls] else { throw LayerConfigError("no kind imports \(cls)") }
    return try type.init(keras: KerasConfig(name: name, className: cls, json: try JSON.parse(config), file: "m.keras"))
}

/// Asserts a Keras config is refused with a message holding every fragment.
func refusesConfig(_ cls: String, _ config: String, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try kerasKind(cls, config), file: file, line: line) { e in
        let text = "\(e)"
        for f in fragments { XCTAssertTrue(text.contains(f), "'\(f)' not in: \(text)", file: file, line: line) }
    }
}

final class LayerTableTests: XCTestCase {
    /// Every kind writes a config it reads back as the same value.
    func testConfigsRoundTrip() throws {
        let samples: [any LayerKind] = [Cropping1DKind(start: 2, end: 1)]
        for k in samples {
            let json = JSON.object([("name", .string("L"))] + k.kerasConfig())
            let back = try type(of: k).init(keras: KerasConfig(name: "L", className: k.kerasClass, json: json, file: ""))
            XCTAssertEqual(AnyLayer(back), AnyLayer(k), "\(k.kerasClass) did not read back its own config")
        }
    }

    func testKerasDefaultNames() {
        let names = ["Cropping1D": "cropping1d", "MaxPooling1D": "max_pooling1d", "PReLU": "p_re_lu", "LSTM": "lstm",
                     "MultiHeadAttention": "multi_head_attention", "GlobalAveragePooling1D": "global_average_pooling1d",
                     "Conv2DTranspose": "conv2d_transpose", "BatchNormalization": "batch_normalization", "ZeroPadding2D": "zero_padding2d"]
        for (cls, want) in names { XCTAssertEqual(Keras.snakeCase(cls), want, cls) }
    }

    func testCropping1D() throws {
        func k(_ s: Int, _ e: Int) -> KindCheck { KindCheck(kind: Cropping1DKind(start: s, end: e), name: "crop") }
        XCTAssertEqual(try k(2, 1).infer([f32(.n, fx(7), fx(3))]), [f32(.n, fx(4), fx(3))])
        XCTAssertEqual(try k(0, 0).infer([f32(.n, fx(7), fx(3))]), [f32(.n, fx(7), fx(3))])
        XCTAssertEqual(try k(6, 0).infer([f32(.n, fx(7), fx(3))]), [f32(.n, fx(1), fx(3))])
        XCTAssertEqual(Cropping1DKind(start: 3, end: 0).description, "cropping1d<3, 0>")
        // Cropping everything: the layer, the input shape, the output it would give, a hint.
        k(5, 3).refuses([f32(.n, fx(6), fx(4))], ["Cropping1D 'crop'", "cropping (5, 3)", "(None, 6, 4)", "(None, -2, 4)", "at most 5 steps"])
        k(4, 0).refuses([f32(.n, fx(4), fx(2))], ["Cropping1D 'crop'", "(None, 4, 2)", "(None, 0, 2)"])
        k(-1, 0).refuses([f32(.n, fx(6), fx(4))], ["cropping (-1, 0)", ">= 0"])
        k(1, 1).refuses([f32(.n, fx(6))], ["Cropping1D 'crop'", "(batch, timesteps, features)", "(None, 6)"])
        k(1, 1).refuses([f32(.n, .t, fx(4))], ["Cropping1D 'crop'", "(None, None, 4)", "free (None)", "fixed number of steps"])
        XCTAssertEqual(try kerasKind("Cropping1D", #"{"cropping": 3}"#) as? Cropping1DKind, Cropping1DKind(start: 3, end: 3))
        refusesConfig("Cropping1D", #"{"cropping": [1, -2]}"#, ["layer 'L' (Cropping1D)", "[1, -2]", ">= 0"])
    }
}
