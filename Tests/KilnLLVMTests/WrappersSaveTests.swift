// The Swift API's Bidirectional with mergeMode nil (Keras' merge_mode None) is saved with
// merge_mode null. Not yet checked by SaveTests.checkSaved: the Swift API's layer call gives one
// tensor (the forward output), so the in-memory model has one output where the saved file has two.

import Foundation
import XCTest
import Kiln
import KilnIR
import KilnKeras
import KilnRuntime

extension SaveTests {
    func testBidirectionalMergeNoneSavesNull() throws {
        Keras.clearSession(seed: 23)
        let m = try Sequential([
            Embedding(inputDim: 12, outputDim: 4, maskZero: true),
            Bidirectional(GRU(3, returnSequences: true), mergeMode: nil),
        ], input: Input(shape: [6], dtype: .int32))
        try m.compile(loss: "mse", optimizer: .sgd(learningRate: 0.1))
        try randomize(m, seed: 5)
        let dir = try makeTempDir(self, "save")
        try m.save(dir + "/m.keras")
        let text = try String(contentsOf: URL(fileURLWithPath: dir + "/m.keras"), encoding: .isoLatin1)
        XCTAssertTrue(text.contains("\"merge_mode\": null") || text.contains("\"merge_mode\":null"), "merge_mode null not in the saved config")
    }
}
