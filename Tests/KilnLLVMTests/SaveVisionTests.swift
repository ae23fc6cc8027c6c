// The 2-D vision layers through the Swift API: a model of every one of them is saved as a
// .keras file and read back (same summary, weights and predictions; SaveTests.checkSaved).

import XCTest
import Kiln
import KilnIR

extension SaveTests {
    func testVisionLayersRoundTrip() throws {
        Keras.clearSession(seed: 23)
        let m = try Sequential([
            Conv2D(4, kernelSize: 3, padding: .same, dilationRate: 2, activation: .relu),
            DepthwiseConv2D(kernelSize: 3, padding: .same, depthMultiplier: 2),
            SeparableConv2D(4, kernelSize: [3, 2], padding: .same, activation: .tanh),
            MaxPooling2D(poolSize: 2, dataFormat: .channelsFirst),
            ZeroPadding2D(padding: ((1, 0), (0, 1)), dataFormat: .channelsFirst),
            UpSampling2D(size: 2, dataFormat: .channelsFirst, interpolation: .bilinear),
            Cropping2D(cropping: ((1, 1), (0, 2))),
            Conv2DTranspose(3, kernelSize: 3, strides: 2, padding: .same),
            SpatialDropout2D(0.3),
            AveragePooling2D(poolSize: 2),
            GlobalMaxPooling2D(),
            Dense(2),
        ], input: Input(shape: [8, 8, 2]))
        try m.compile(loss: "mse", optimizer: .sgd(learningRate: 0.05))
        try randomize(m, seed: 4)
        let s = m.summary()
        for row in ["(None, 8, 8, 4)", "(None, 8, 8, 8)", "(None, 8, 4, 2)", "(None, 8, 5, 3)", "(None, 8, 10, 6)",
                    "(None, 6, 8, 6)", "(None, 12, 16, 3)", "(None, 6, 8, 3)", "(None, 3)"] {
            XCTAssertTrue(s.contains(row), "\(row) not in:\n\(s)")
        }
        for name in ["depthwise_conv2d", "separable_conv2d", "zero_padding2d", "up_sampling2d", "cropping2d",
                     "conv2d_transpose", "spatial_dropout2d", "global_max_pooling2d"] {
            XCTAssertTrue(s.contains(name), "\(name) not in:\n\(s)")
        }
        try checkSaved(m, "vision")
    }
}
