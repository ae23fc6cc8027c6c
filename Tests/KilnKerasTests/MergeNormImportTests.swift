// The importer's generic reading of weight regularizers / constraints and activity
// regularizers (Sources/KilnKeras/WeightPenaltyImport.swift), on the Keras-made cases of
// tools/case_sets/mergenorm.py, and its refusals.

import Foundation
import XCTest
import KilnIR
import KilnKeras
import KilnSupport
import KilnLayers
import KilnTestSupport

final class MergeNormImportTests: XCTestCase {
    /// The package's root folder (this file is Tests/KilnKerasTests/MergeNormImportTests.swift).
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func spec(_ name: String) throws -> KerasModelSpec {
        try KerasArchive.read(path: root.appendingPathComponent("Tests/cases/\(name)/model.keras").path)
    }

    func param(_ g: Graph, _ name: String) -> Param? { g.params.first { $0.name == name } }

    func testPenaltiesAttachToTheirWeights() throws {
        let g = try KerasGraphBuilder.build(try spec("reg_dense_constraints"), file: "m.keras").graph
        XCTAssertEqual(param(g, "dense/kernel")?.regularizer, Regularizer(l2: 0.02))
        XCTAssertEqual(param(g, "dense/bias")?.regularizer, Regularizer(l1: 0.01))
        XCTAssertEqual(param(g, "dense/kernel")?.constraint, .maxNorm(maxValue: 0.9, axes: [0]))
        XCTAssertEqual(param(g, "dense/bias")?.constraint, .nonNeg)
        XCTAssertEqual(param(g, "dense_1/kernel")?.regularizer, Regularizer(l1: 0.01, l2: 0.03))
        XCTAssertEqual(param(g, "dense_1/kernel")?.constraint, .minMaxNorm(minValue: 0.5, maxValue: 0.8, rate: 0.7, axes: [0]))
        XCTAssertNil(param(g, "dense_1/bias")?.regularizer)
        XCTAssertEqual(param(g, "dense_2/kernel")?.constraint, .unitNorm(axes: [0]))
        // The first Dense's activity_regularizer: an ActivityRegularization after it.
        let ar = g.nodes.filter { if case .layer(.table(let t)) = $0.op { return t.kind is ActivityRegularizationKind } else { return false } }
        XCTAssertEqual(ar.map(\.layer), ["dense"])

        let r = try KerasGraphBuilder.build(try spec("reg_embedding_recurrent"), file: "m.keras").graph
        XCTAssertEqual(param(r, "embedding/embeddings")?.regularizer, Regularizer(l1: 0.002))
        XCTAssertEqual(param(r, "embedding/embeddings")?.constraint, .maxNorm(maxValue: 0.7, axes: [1]))
        // recurrent_kernel reads recurrent_regularizer / recurrent_constraint.
        XCTAssertEqual(param(r, "lstm/recurrent_kernel")?.regularizer, Regularizer(l1: 0.01))
        XCTAssertEqual(param(r, "lstm/recurrent_kernel")?.constraint, .unitNorm(axes: [0]))
        XCTAssertEqual(param(r, "lstm/bias")?.regularizer, Regularizer(l2: 0.02))
        XCTAssertEqual(param(r, "gru/bias")?.constraint, .nonNeg)
        XCTAssertEqual(param(r, "simple_rnn/kernel")?.regularizer, Regularizer(l1: 0.01, l2: 0.01))

        // BatchNormalization's moving statistics are weights that do not train.
        let bn = try KerasGraphBuilder.build(try spec("reg_conv2d_bn"), file: "m.keras")
        XCTAssertEqual(param(bn.graph, "batch_normalization/moving_mean")?.trainable, false)
        XCTAssertEqual(param(bn.graph, "batch_normalization/gamma")?.regularizer, Regularizer(l2: 0.02))
        XCTAssertEqual(param(bn.graph, "batch_normalization/beta")?.constraint, .nonNeg)
        XCTAssertEqual(param(bn.graph, "conv2d/kernel")?.constraint, .maxNorm(maxValue: 1, axes: [0, 1, 2]))
        let row = try XCTUnwrap(bn.layers.first { $0.name == "batch_normalization" })
        XCTAssertEqual([row.paramCount, row.trainableCount], [12, 6])
    }

    /// The case's model with one key of a layer's config replaced.
    func edited(_ name: String, layer: Int, key: String, _ value: String) throws -> KerasModelSpec {
        var s = try spec(name)
        guard case .object(var pairs) = s.layers[layer].config else { throw LayerConfigError("no object") }
        let v = try JSON.parse(value)
        if let k = pairs.firstIndex(where: { $0.0 == key }) { pairs[k].1 = v } else { pairs.append((key, v)) }
        s.layers[layer].config = .object(pairs)
        return s
    }

    func expectRefusal(_ s: KerasModelSpec, _ parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try KerasGraphBuilder.build(s, file: "m.keras"), file: file, line: line) { e in
            for p in parts { XCTAssertTrue("\(e)".contains(p), "'\(p)' not in: \(e)", file: file, line: line) }
        }
    }

    func testRefusals() throws {
        let first = try spec("reg_dense_constraints").layers.firstIndex { $0.className == "Dense" }!
        expectRefusal(try edited("reg_dense_constraints", layer: first, key: "kernel_regularizer",
                                 #"{"class_name": "OrthogonalRegularizer", "config": {"factor": 0.01, "mode": "rows"}}"#),
                      ["layer 'dense' (Dense) uses kernel_regularizer OrthogonalRegularizer; Kiln supports L1, L2 and L1L2"])
        expectRefusal(try edited("reg_dense_constraints", layer: first, key: "bias_constraint", #""radial""#),
                      ["layer 'dense' (Dense) uses bias_constraint 'radial'; Kiln supports MaxNorm, NonNeg, UnitNorm and MinMaxNorm"])
        expectRefusal(try edited("reg_dense_constraints", layer: first, key: "kernel_constraint",
                                 #"{"class_name": "MaxNorm", "config": {"max_value": 2, "axis": 2}}"#),
                      ["layer 'dense' (Dense)", "max_norm<2.0, axis [2]>", "(6, 8)", "no such axis"])
        expectRefusal(try edited("reg_dense_constraints", layer: first, key: "depthwise_regularizer", #"{"class_name": "L2", "config": {"l2": 0.1}}"#),
                      ["layer 'dense' (Dense) has depthwise_regularizer L2, which Kiln does not support for this layer"])
    }
}
