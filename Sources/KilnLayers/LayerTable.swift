// The list of the layer table: every LayerKind, once. Adding a Keras layer is its file in
// Layers/ (the kind and its Swift API class), its tests, and one line here.

import KilnIR

public enum LayerTable {
    /// Every layer kind of the table.
    public static let kinds: [any LayerKind.Type] = [
        ActivationKind.self,
        AddKind.self,
        ConcatenateKind.self,
        CRFKind.self,
        Cropping1DKind.self,
        DenseKind.self,
        DropoutKind.self,
        EmbeddingKind.self,
        FlattenKind.self,
        MaskingKind.self,
        PReLUKind.self,
        ReshapeKind.self,
        RNNKind.self,
        BidirectionalKind.self,
        TimeDistributedKind.self,
        Conv1DKind.self,
        Pooling1DKind.self,
        GlobalPooling1DKind.self,
        ZeroPadding1DKind.self,
        UpSampling1DKind.self,
        RepeatVectorKind.self,
        PermuteKind.self,
        SpatialDropout1DKind.self,
        ElementwiseMergeKind.self,
        DotKind.self,
        BatchNormalizationKind.self,
        GaussianNoiseKind.self,
        GaussianDropoutKind.self,
        ActivityRegularizationKind.self,
        LayerNormalizationKind.self,
        AttentionKind.self,
        MultiHeadAttentionKind.self,
        Conv2DKind.self,
        DepthwiseConv2DKind.self,
        SeparableConv2DKind.self,
        Conv2DTransposeKind.self,
        Pooling2DKind.self,
        GlobalPooling2DKind.self,
        Cropping2DKind.self,
        ZeroPadding2DKind.self,
        UpSampling2DKind.self,
        SpatialDropout2DKind.self,
        RescalingKind.self,
    ]

    /// Kind by Keras class name.
    public static let byKerasClass: [String: any LayerKind.Type] = {
        var m: [String: any LayerKind.Type] = [:]
        for k in kinds { for c in k.kerasClasses { precondition(m[c] == nil, "two layer kinds import \(c)"); m[c] = k } }
        return m
    }()
}
