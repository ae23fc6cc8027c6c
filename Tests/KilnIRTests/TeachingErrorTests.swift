// The refusals that teach (issue 9, the CNN-LSTM sample): a recurrent layer fed a
// tensor without a time axis names the layer that dropped it; a 'valid' window
// larger than its input names the dimension and the window; a channels_first
// input to a Conv2D says so and gives the channels_last shape.

import XCTest
import KilnIR
import KilnLayers

private func f32(_ dims: Dim...) -> TensorType { .f32(dims) }
private func fx(_ k: Int) -> Dim { .fixed(k) }
private let N = Dim.n

/// TimeDistributed around a layer op of the table.
private func timeDistributed(_ op: LayerOp) -> LayerOp {
    guard case .table(let t) = op else { fatalError("not a table layer: \(op)") }
    return TimeDistributedKind(inner: t.kind, innerName: "inner").op
}

final class TeachingErrorTests: XCTestCase {
    /// The error `body` throws must contain every fragment.
    func expectError(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            XCTAssertTrue(e is ShapeError, "\(type(of: e)): \(e)", file: file, line: line)
            let text = "\(e)"
            for f in fragments { XCTAssertTrue(text.contains(f), "'\(f)' not in: \(text)", file: file, line: line) }
        }
    }

    func conv(_ filters: Int, _ k: Int, _ padding: Padding, stride: Int = 1) -> LayerOp {
        Conv2DKind(filters: filters, kernel: [k, k], strides: [stride, stride], padding: padding, activation: .relu, useBias: false).op
    }

    // MARK: - A window larger than its input

    func testValidConvolutionNamesTheDimensionAndTheKernel() throws {
        expectError(["Conv2D 'c'", "3x3 'valid' convolution does not fit input (None, 2, 5, 8)",
                     "its height 2 is smaller than the kernel's 3 rows", "padding='same'"]) {
            _ = try inferTypes(.layer(conv(4, 3, .valid)), [f32(N, fx(2), fx(5), fx(8)), f32(fx(3), fx(3), fx(8), fx(4))], layer: "c")
        }
        expectError(["its width 1 is smaller than the kernel's 3 columns"]) {
            _ = try inferTypes(.layer(conv(4, 3, .valid)), [f32(N, fx(9), fx(1), fx(8)), f32(fx(3), fx(3), fx(8), fx(4))], layer: "c")
        }
        expectError(["its height 2 and width 2 are smaller than the kernel's 3x3"]) {
            _ = try inferTypes(.layer(conv(4, 3, .valid)), [f32(N, fx(2), fx(2), fx(16)), f32(fx(3), fx(3), fx(16), fx(4))], layer: "c")
        }
        // A stride larger than the shortfall: Keras' floor((2 - 4) / 3) + 1 = 0 rows, refused (truncating
        // toward zero would have made it 1).
        expectError(["4x4 'valid' convolution", "its height 2 and width 2 are smaller than the kernel's 4x4"]) {
            _ = try inferTypes(.layer(conv(4, 4, .valid, stride: 3)), [f32(N, fx(2), fx(2), fx(1)), f32(fx(4), fx(4), fx(1), fx(4))], layer: "c")
        }
        // The same sizes with 'same' padding, and a window that just fits, are fine.
        XCTAssertEqual(try inferTypes(.layer(conv(4, 3, .same)), [f32(N, fx(2), fx(2), fx(16)), f32(fx(3), fx(3), fx(16), fx(4))], layer: "c")[0],
                       f32(N, fx(2), fx(2), fx(4)))
        XCTAssertEqual(try inferTypes(.layer(conv(4, 3, .valid)), [f32(N, fx(3), fx(3), fx(16)), f32(fx(3), fx(3), fx(16), fx(4))], layer: "c")[0],
                       f32(N, fx(1), fx(1), fx(4)))
    }

    func testPoolLargerThanItsInput() throws {
        expectError(["MaxPooling2D 'p'", "2x2 pool does not fit input (None, 1, 6, 3)", "its height 1 is smaller than the pool's 2 rows"]) {
            _ = try inferTypes(.layer(Pooling2DKind(.max, pool: [2, 2], strides: [2, 2], padding: .valid).op), [f32(N, fx(1), fx(6), fx(3))], layer: "p")
        }
    }

    func testTimeDistributedConvolutionSaysItRunsOnEachStep() throws {
        let td = timeDistributed(conv(32, 3, .valid))
        expectError(["TimeDistributed 'td_conv2' (Conv2D on each step)", "input (None, 2, 2, 16)", "height 2 and width 2", "3x3"]) {
            _ = try inferTypes(.layer(td), [f32(N, fx(4), fx(2), fx(2), fx(16)), f32(fx(3), fx(3), fx(16), fx(32))], layer: "td_conv2")
        }
    }

    // MARK: - channels_first

    func testChannelsFirstInputWithChannelsLastWeights() throws {
        // Weights for 1 channel (a model made for (28, 28, 1)), an input written (1, 28, 28).
        expectError(["Conv2D 'conv'", "input (None, 1, 28, 28) looks channels_first", "kernel (3, 3, 1, 32) takes 1 input channel, the size of axis 1",
                     "height 1, width 28 and 28 channels", "give the input shape (28, 28, 1)", "data_format='channels_last'"]) {
            _ = try inferTypes(.layer(conv(32, 3, .same)), [f32(N, fx(1), fx(28), fx(28)), f32(fx(3), fx(3), fx(1), fx(32))], layer: "conv")
        }
        // Three colour channels first.
        expectError(["(None, 3, 32, 32) looks channels_first", "(32, 32, 3)"]) {
            _ = try inferTypes(.layer(conv(8, 3, .valid)), [f32(N, fx(3), fx(32), fx(32)), f32(fx(3), fx(3), fx(3), fx(8))], layer: "conv")
        }
    }

    func testChannelsFirstInputWithWeightsBuiltForIt() throws {
        // Weights inferred from the input (the Swift API): a 3x3 'valid' kernel does not fit in height 1;
        // the input may be channels_first, or a feature map: the hint says both.
        expectError(["3x3 'valid' convolution does not fit input (None, 1, 28, 28)", "its height 1 is smaller than the kernel's 3 rows",
                     "if the input is channels_first (1 channel of 28x28), give it as (28, 28, 1)", "data_format='channels_last'",
                     "otherwise use padding='same'"]) {
            _ = try inferTypes(.layer(conv(32, 3, .valid)), [f32(N, fx(1), fx(28), fx(28)), f32(fx(3), fx(3), fx(28), fx(32))], layer: "conv")
        }
        // Small feature maps that cannot be images written channels first keep the plain message.
        for (shape, k) in [([2, 2, 1], 3), ([2, 5, 8], 3), ([1, 7, 512], 3)] {
            XCTAssertThrowsError(try inferTypes(.layer(conv(4, k, .valid)), [f32(N, fx(shape[0]), fx(shape[1]), fx(shape[2])),
                                                                              f32(fx(k), fx(k), fx(shape[2]), fx(4))], layer: "c")) { e in
                XCTAssertFalse("\(e)".contains("channels_first"), "\(e)")
                XCTAssertTrue("\(e)".contains("smaller than the kernel"), "\(e)")
            }
        }
        // A mismatched kernel that does not match axis 1 either keeps the plain message.
        XCTAssertThrowsError(try inferTypes(.layer(conv(4, 3, .same)), [f32(N, fx(8), fx(8), fx(3)), f32(fx(3), fx(3), fx(5), fx(4))], layer: "c")) { e in
            XCTAssertFalse("\(e)".contains("channels_first"), "\(e)")
            XCTAssertTrue("\(e)".contains("expected kernel (3, 3, 3, 4)"), "\(e)")
        }
    }

    // MARK: - A recurrent layer without a time axis

    /// A graph with one input; `param` adds a zero weight.
    struct Maker {
        var g = Graph(name: "t")
        mutating func param(_ name: String, _ shape: [Int]) -> Value {
            g.addParam(name, .f32(shape.map { .fixed($0) }), initial: [Float](repeating: 0, count: shape.reduce(1, *)))
        }
        mutating func lstm(_ x: Value, units: Int, sequences: Bool = false, _ name: String) throws -> Value {
            let features = g.type(x).shape.last!.factor
            let spec = RecurrentSpec(kind: .lstm, units: units, returnSequences: sequences)
            return try g.add(.layer(RNNKind(spec, masked: false).op),
                             [x, param("\(name)/kernel", [features, 4 * units]), param("\(name)/recurrent_kernel", [units, 4 * units]),
                              param("\(name)/bias", [4 * units])], layer: name)[0]
        }
    }

    func testLSTMAfterAnUnwrappedFlattenNamesTheFlatten() throws {
        var m = Maker()
        let x = m.g.addInput("tiles", f32(N, fx(4), fx(2), fx(2), fx(32)))
        let flat = try m.g.add(.layer(FlattenKind().op), [x], layer: "flatten")[0]
        let drop = try m.g.add(.layer(DropoutKind(rate: 0.25).op), [flat], layer: "dropout")[0]
        let count = m.g.nodes.count
        expectError(["LSTM 'lstm'", "expects a 3-D input (batch, time, features)", "got the 2-D (None, 512)",
                     "Flatten 'flatten' turned (None, 4, 2, 2, 32) into (None, 512)", "time axis (4 steps)",
                     "TimeDistributed(Flatten())", "(None, 4, 128)"]) {
            _ = try m.lstm(drop, units: 8, "lstm")
        }
        XCTAssertEqual(m.g.nodes.count, count, "a refused node is not added")

        // Wrapped, the same layers build.
        var ok = Maker()
        let y = ok.g.addInput("tiles", f32(N, fx(4), fx(2), fx(2), fx(32)))
        let perStep = try ok.g.add(.layer(timeDistributed(FlattenKind().op)), [y], layer: "td_flatten")[0]
        XCTAssertEqual(ok.g.type(perStep), f32(N, fx(4), fx(128)))
        let h = try ok.lstm(perStep, units: 8, "lstm")
        XCTAssertEqual(ok.g.type(h), f32(N, fx(8)))
    }

    func testLSTMOnImageStepsSuggestsTimeDistributedFlatten() throws {
        var m = Maker()
        let x = m.g.addInput("tiles", f32(N, fx(4), fx(2), fx(2), fx(32)))
        expectError(["LSTM 'lstm'", "(batch, time, features)", "(None, 4, 2, 2, 32)", "each of its 4 steps is (2, 2, 32)",
                     "TimeDistributed(Flatten())", "(None, 4, 128)"]) {
            _ = try m.lstm(x, units: 8, "lstm")
        }
    }

    func testStackedLSTMWithoutReturnSequences() throws {
        var m = Maker()
        let x = m.g.addInput("x", f32(N, fx(6), fx(3)))
        let h = try m.lstm(x, units: 16, "lstm_1")
        expectError(["LSTM 'lstm_2'", "(batch, time, features)", "(None, 16)", "LSTM 'lstm_1' returns only its last step",
                     "return_sequences=True", "(None, 6, 16)"]) {
            _ = try m.lstm(h, units: 4, "lstm_2")
        }
    }

    func testInputWithoutTimeAxis() throws {
        var m = Maker()
        let x = m.g.addInput("pixels", f32(N, fx(64)))
        let d = try m.g.add(.layer(DenseKind(units: 64, activation: .relu, useBias: false).op), [x, m.param("dense/kernel", [64, 64])], layer: "dense")[0]
        expectError(["LSTM 'lstm'", "the model input 'pixels' is (None, 64), with no time axis", "(8, 8) for 8 steps of 8 values"]) {
            _ = try m.lstm(d, units: 4, "lstm")
        }
    }

    func testFlattenedImageSuggestsRowsAsSteps() throws {
        var m = Maker()
        let x = m.g.addInput("image", f32(N, fx(28), fx(28), fx(1)))
        let c = try m.g.add(.layer(conv(8, 3, .valid)), [x, m.param("conv/kernel", [3, 3, 1, 8])], layer: "conv")[0]
        let f = try m.g.add(.layer(FlattenKind().op), [c], layer: "flatten")[0]
        expectError(["Flatten 'flatten' turned (None, 26, 26, 8) into (None, 5408)", "Reshape((26, 208))", "TimeDistributed"]) {
            _ = try m.lstm(f, units: 4, "lstm")
        }
    }

    func testTimeDistributedAfterFlatteningTheSteps() throws {
        var m = Maker()
        let x = m.g.addInput("x", f32(N, fx(6), fx(5)))
        let f = try m.g.add(.layer(FlattenKind().op), [x], layer: "flatten")[0]
        expectError(["TimeDistributed 'td'", "no time axis", "Flatten 'flatten' turned (None, 6, 5) into (None, 30)",
                     "folding its 6 steps", "remove it"]) {
            _ = try m.g.add(.layer(timeDistributed(DenseKind(units: 2, activation: .linear, useBias: false).op)),
                            [f, m.param("td/kernel", [5, 2])], layer: "td")
        }
    }

    func testBidirectionalWithoutReturnSequences() throws {
        var m = Maker()
        let x = m.g.addInput("x", f32(N, fx(7), fx(3)))
        let s = RecurrentSpec(kind: .gru, units: 5)
        var back = s
        back.goBackwards = true
        var ws: [Value] = [x]
        for dir in ["forward", "backward"] {
            ws += [m.param("bi/\(dir)_kernel", [3, 15]), m.param("bi/\(dir)_recurrent_kernel", [5, 15]), m.param("bi/\(dir)_bias", [2, 15])]
        }
        let h = try m.g.add(.layer(BidirectionalKind(forward: s, backward: back, merge: .concat, masked: false, innerName: "rnn").op), ws, layer: "bi")[0]
        expectError(["Bidirectional 'bi' returns only its last step, (None, 10)", "return_sequences=True", "(None, 7, 10)"]) {
            _ = try m.lstm(h, units: 4, "lstm")
        }
    }
}
