// The CRF loss in the Swift API (the layer is in KilnLayers/Layers/CRF.swift).

import KilnIR

extension LossConfig {
    /// The CRF loss: the mean over the batch of the negative log-likelihood of the target tags
    /// (int ids, (batch, steps)) under the CRF layer that produces the output (the kiln_crf
    /// package's `CRFLoss`).
    /// - Parameters:
    ///   - layer: the CRF layer's name; nil takes the CRF that produces the output.
    public static func crf(layer: String? = nil) -> LossConfig {
        var l = LossConfig(name: "crf")
        l.crfLayer = layer
        return l
    }
}
