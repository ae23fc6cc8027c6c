// Wrappers and masks (issue 11): Bidirectional with merge_mode None, TimeDistributed given a mask.
// The Keras-made cases bidir_none_*, *_return_state_masked check predict and fit end to end.

import XCTest
import KilnIR
import KilnLayers
import KilnPasses
import KilnSupport

/// Output types of a kind for data inputs, its weights, then a bool (N, T) mask.
private func inferMasked(_ kind: any LayerKind, _ x: TensorType) throws -> [TensorType] {
    let w = try kind.weights(for: [x]).map { TensorType.f32($0.shape.map { .fixed($0) }) }
    return try inferTypes(.layer(kind.op), [x] + w + [TensorType(.bool, Array(x.shape.prefix(2)))], layer: "L")
}

final class LayersWrappersTests: XCTestCase {
    private let lstmSeq = #"{"class_name": "LSTM", "config": {"name": "lstm", "units": 3, "return_sequences": true}}"#

    func testBidirectionalMergeNoneHasTwoOutputs() throws {
        let k = try kerasKind("Bidirectional", #"{"merge_mode": null, "layer": \#(lstmSeq)}"#)
        let b = try XCTUnwrap(k as? BidirectionalKind)
        XCTAssertNil(b.merge)
        XCTAssertEqual(b.maskedOutputCount, 2)
        let outs = try KindCheck(kind: k).infer([.f32([.n, .fixed(5), .fixed(4)])])
        XCTAssertEqual(outs, [.f32([.n, .fixed(5), .fixed(3)]), .f32([.n, .fixed(5), .fixed(3)])])
        let concat = try kerasKind("Bidirectional", #"{"merge_mode": "concat", "layer": \#(lstmSeq)}"#)
        XCTAssertEqual(concat.maskedOutputCount, 1)
        XCTAssertEqual(try KindCheck(kind: concat).infer([.f32([.n, .fixed(5), .fixed(4)])]), [.f32([.n, .fixed(5), .fixed(6)])])
    }

    /// Keras 3's order with return_state: forward output, backward output, forward states, backward states.
    func testBidirectionalMergeNoneWithStates() throws {
        let gru = #"{"class_name": "GRU", "config": {"name": "gru", "units": 2, "return_state": true}}"#
        let k = try kerasKind("Bidirectional", #"{"merge_mode": null, "layer": \#(gru)}"#)
        let outs = try inferMasked(try XCTUnwrap(k.consumingMask()), .f32([.n, .fixed(6), .fixed(4)]))
        XCTAssertEqual(outs, Array(repeating: .f32([.n, .fixed(2)]), count: 4))
    }

    func testBidirectionalMergeNoneWritesNullAndReadsItBack() throws {
        let k = try XCTUnwrap(try kerasKind("Bidirectional", #"{"merge_mode": null, "layer": \#(lstmSeq)}"#) as? BidirectionalKind)
        let config = k.kerasConfig()
        XCTAssertEqual(config.first?.0, "merge_mode")
        XCTAssertTrue(config.first?.1.isNull ?? false)
        let back = try BidirectionalKind(keras: KerasConfig(name: "L", className: "Bidirectional", json: .object(config), file: ""))
        XCTAssertEqual(AnyLayer(back), AnyLayer(k))
    }

    func testBidirectionalRefusesAnUnknownMergeMode() {
        refusesConfig("Bidirectional", #"{"merge_mode": "max", "layer": \#(lstmSeq)}"#, ["merge_mode \"max\"", "concat, sum, mul, ave and None"])
    }

    /// A Functional file passes TimeDistributed its mask (mask=): it takes it and leaves it unread
    /// for a wrapped layer whose call has no mask.
    func testTimeDistributedTakesAMaskItsDenseDoesNotRead() throws {
        let td = try kerasKind("TimeDistributed", #"{"layer": {"class_name": "Dense", "config": {"name": "dense", "units": 2}}}"#)
        let masked = try XCTUnwrap(td.consumingMask())
        XCTAssertNil(masked.consumingMask())
        XCTAssertEqual(try inferMasked(masked, .f32([.n, .fixed(5), .fixed(4)])), [.f32([.n, .fixed(5), .fixed(2)])])
    }

    /// Keras hands one step's mask to a wrapped layer whose call takes one (BatchNormalization);
    /// Kiln says it does not.
    func testTimeDistributedRefusesAMaskForAWrappedLayerThatReadsIt() throws {
        let td = try kerasKind("TimeDistributed", #"{"layer": {"class_name": "BatchNormalization", "config": {"name": "bn"}}}"#)
        let masked = try XCTUnwrap(td.consumingMask())
        XCTAssertThrowsError(try inferMasked(masked, .f32([.n, .fixed(5), .fixed(4)]))) { e in
            XCTAssertTrue("\(e)".contains("BatchNormalization step by step"), "\(e)")
        }
    }
}
