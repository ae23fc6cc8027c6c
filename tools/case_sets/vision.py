# The 2-D vision layers (issue 10): dilation, channels_first, depthwise, separable and
# transposed convolutions, cropping, zero-padding, upsampling, spatial dropout.
# Runs inside tools/gen_cases.py (case, seq, comp, sgd, adam, dense_data, reg, ... are its).


def image_pairs(shape, n_pred=8, n_train=16):
    """An autoencoder's data: images in [0, 1), the target is the input itself."""
    def make(rng):
        x = rng.random((n_pred,) + shape).astype(np.float32)
        tx = rng.random((n_train,) + shape).astype(np.float32)
        return [x], None, [tx], [tx.copy()]
    return make


case("conv2d_dilated",
     ["Conv2D", "Conv2D:dilation_rate", "Conv2D:valid", "Conv2D:same", "Conv2D:relu", "Flatten", "Dense",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((9, 9, 2), lambda: L.Conv2D(3, 3, dilation_rate=2, activation="relu"),
         lambda: L.Conv2D(2, (2, 3), dilation_rate=(2, 1), padding="same"),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((9, 9, 2), reg(2), n_pred=8, n_train=20),
     scenario="a 3x3 kernel with dilation 2 spans 5x5 ('valid': 9x9 -> 5x5); a 2x3 kernel dilated (2, 1) "
              "spans 3x3 and 'same' pads it 1+1 on both axes")

case("conv_pool_channels_first",
     ["Conv2D", "Conv2D:channels_first", "Conv2D:same", "Conv2D:strides", "Conv2D:tanh",
      "MaxPooling2D:channels_first", "AveragePooling2D:channels_first", "AveragePooling2D:same",
      "GlobalAveragePooling2D:channels_first", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((2, 9, 8), lambda: L.Conv2D(3, 3, padding="same", activation="tanh", data_format="channels_first"),
         lambda: L.MaxPooling2D(2, data_format="channels_first"),
         lambda: L.Conv2D(4, 2, strides=(1, 2), data_format="channels_first"),
         lambda: L.AveragePooling2D(2, strides=1, padding="same", data_format="channels_first"),
         lambda: L.GlobalAveragePooling2D(data_format="channels_first"), lambda: L.Dense(2)),
     comp("mse", sgd(0.1)),
     dense_data((2, 9, 8), reg(2), n_pred=8, n_train=20),
     scenario="images written (channels, height, width) as PyTorch does: 2 channels of 9x8, every layer "
              "data_format='channels_first'; the kernels keep Keras' (kh, kw, in, out) layout")

case("conv_pool_channels_first_flatten",
     ["Conv2D:channels_first", "Conv2D:dilation_rate", "MaxPooling2D:channels_first", "MaxPooling2D:same",
      "GlobalMaxPooling2D:channels_first", "GlobalMaxPooling2D:keepdims", "Flatten", "Dense",
      "loss:categorical_crossentropy", "optimizer:Adam", "api:Sequential"],
     seq((3, 7, 7), lambda: L.Conv2D(4, 2, dilation_rate=2, activation="relu", data_format="channels_first"),
         lambda: L.MaxPooling2D(2, padding="same", data_format="channels_first"),
         lambda: L.GlobalMaxPooling2D(data_format="channels_first", keepdims=True),
         lambda: L.Flatten(), lambda: L.Dense(3, activation="softmax")),
     comp("categorical_crossentropy", adam(0.01)),
     dense_data((3, 7, 7), cat(3), n_pred=8, n_train=20),
     scenario="a dilated channels_first convolution, a 'same' channels_first pool on an odd size, and a global max "
              "keeping its axes (None, 4, 1, 1)")

case("depthwise_conv2d",
     ["DepthwiseConv2D", "DepthwiseConv2D:depth_multiplier", "DepthwiseConv2D:same", "DepthwiseConv2D:strides",
      "DepthwiseConv2D:relu", "DepthwiseConv2D:no_bias", "Flatten", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((7, 7, 3), lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
         lambda: L.DepthwiseConv2D((2, 3), strides=2, use_bias=False),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((7, 7, 3), reg(2), n_pred=8, n_train=20),
     scenario="each of 3 channels convolved with its own 2 filters (6 out, channel c*2+m), then a strided 2x3 "
              "depthwise pass without bias")

case("separable_conv2d",
     ["SeparableConv2D", "SeparableConv2D:depth_multiplier", "SeparableConv2D:same", "SeparableConv2D:dilation_rate",
      "SeparableConv2D:relu", "DepthwiseConv2D:channels_first", "GlobalAveragePooling2D", "Dense",
      "loss:mse", "optimizer:Adam", "api:Sequential"],
     seq((8, 8, 3), lambda: L.SeparableConv2D(4, 3, depth_multiplier=2, padding="same", activation="relu"),
         lambda: L.SeparableConv2D(5, 3, dilation_rate=2),
         lambda: L.DepthwiseConv2D(2, data_format="channels_first"),
         lambda: L.GlobalAveragePooling2D(), lambda: L.Dense(2)),
     comp("mse", adam(0.01)),
     dense_data((8, 8, 3), reg(2), n_pred=8, n_train=20),
     scenario="a depthwise (x2) + pointwise separable convolution, a dilated one, and a depthwise pass that "
              "reads the (4, 4, 5) maps as channels_first (4 channels of 4x5)")

case("conv_autoencoder_transpose",
     ["Conv2D", "Conv2D:same", "MaxPooling2D", "Conv2DTranspose", "Conv2DTranspose:strides", "Conv2DTranspose:same",
      "Conv2DTranspose:relu", "Conv2D:sigmoid", "loss:mse", "optimizer:Adam", "api:Sequential"],
     seq((8, 8, 1), lambda: L.Conv2D(4, 3, padding="same", activation="relu"),
         lambda: L.MaxPooling2D(2),
         lambda: L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
         lambda: L.Conv2D(1, 3, padding="same", activation="sigmoid")),
     comp("mse", adam(0.01)),
     image_pairs((8, 8, 1)),
     scenario="a small convolutional autoencoder: 8x8 -> conv -> pool to 4x4 -> transposed conv (stride 2, 'same') "
              "back to 8x8 -> sigmoid conv; the target is the input")

case("conv2d_transpose_valid",
     ["Conv2DTranspose", "Conv2DTranspose:valid", "Conv2DTranspose:strides", "Conv2DTranspose:kernel_below_stride",
      "Conv2DTranspose:same", "Conv2DTranspose:no_bias", "Conv2DTranspose:channels_first", "Flatten", "Dense",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((3, 4, 2), lambda: L.Conv2DTranspose(3, (3, 2), strides=(2, 3), activation="tanh"),
         lambda: L.Conv2DTranspose(2, 4, strides=2, padding="same", use_bias=False),
         lambda: L.Conv2DTranspose(2, 3, strides=(1, 2), padding="same", data_format="channels_first"),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.02)),
     dense_data((3, 4, 2), reg(2), n_pred=8, n_train=20),
     scenario="'valid' transposed conv 3x4 -> 7x12 (width (4-1)*3 + max(2, 3): a kernel narrower than its stride "
              "leaves zero columns); 'same' 4x4 stride 2 -> 14x24; a channels_first one reading (14, 24, 2) as 14 channels")

case("crop_pad_upsample",
     ["ZeroPadding2D", "Cropping2D", "UpSampling2D", "Conv2D", "Conv2D:relu", "Conv2D:strides", "Flatten", "Dense",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6, 7, 2), lambda: L.ZeroPadding2D(((1, 2), (0, 1))),
         lambda: L.Conv2D(3, 3, activation="relu"),
         lambda: L.Cropping2D(((1, 0), (2, 1))),
         lambda: L.UpSampling2D((2, 1)),
         lambda: L.Conv2D(2, 2, strides=2), lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((6, 7, 2), reg(2), n_pred=8, n_train=20),
     scenario="pad 6x7 to 9x8, 3x3 conv to 7x6, crop to 6x3, upsample rows x2 to 12x3, strided conv")

case("crop_pad_upsample_channels_first",
     ["ZeroPadding2D:channels_first", "ZeroPadding2D:int", "Cropping2D:channels_first", "Cropping2D:symmetric",
      "UpSampling2D:channels_first", "Conv2D:channels_first", "GlobalAveragePooling2D", "Dense",
      "loss:mse", "optimizer:Adam", "api:Sequential"],
     seq((2, 5, 4), lambda: L.ZeroPadding2D(1, data_format="channels_first"),
         lambda: L.UpSampling2D(2, data_format="channels_first"),
         lambda: L.Cropping2D((2, 1), data_format="channels_first"),
         lambda: L.Conv2D(3, 3, activation="tanh", data_format="channels_first"),
         lambda: L.GlobalAveragePooling2D(data_format="channels_first"), lambda: L.Dense(2)),
     comp("mse", adam(0.01)),
     dense_data((2, 5, 4), reg(2), n_pred=8, n_train=20),
     scenario="channels_first (2, 5, 4): pad 1 all round to 7x6, upsample x2 to 14x12, crop 2 rows and 1 column "
              "each side to 10x10, conv, global average over the spatial axes 2 and 3")

case("spatial_dropout2d",
     ["SpatialDropout2D", "SpatialDropout2D:predict", "Conv2D", "GlobalAveragePooling2D", "Dense",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6, 6, 3), lambda: L.Conv2D(4, 3, padding="same", activation="relu"),
         lambda: L.SpatialDropout2D(0.5),
         lambda: L.GlobalAveragePooling2D(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((6, 6, 3), reg(2), n_pred=8, n_train=20),
     train=False,
     scenario="SpatialDropout2D(0.5) between a conv and a global pool: predict is the identity. Its training "
              "draws cannot match Keras' random numbers, so this case has no fit; spatial_dropout2d_fit checks the "
              "training path and the unit tests check the mask statistics")

case("spatial_dropout2d_fit",
     ["SpatialDropout2D", "SpatialDropout2D:fit", "SpatialDropout2D:channels_first", "Conv2D", "Flatten", "Dense",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((5, 5, 2), lambda: L.Conv2D(3, 3, activation="relu"),
         lambda: L.SpatialDropout2D(1e-6, data_format="channels_first"),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((5, 5, 2), reg(2), n_pred=8, n_train=20),
     scenario="a SpatialDropout2D with rate 1e-6 trains through the dropout path in both Keras and Kiln (mask "
              "drawn, kept maps scaled by 1 / (1 - rate)) while no map is dropped in practice, so fit can be "
              "compared exactly; the masks' statistics at real rates are unit-tested (LayersVisionTests)")

case("vision_runtime_kernels",
     ["Conv2DTranspose", "Conv2DTranspose:same", "Conv2DTranspose:valid", "Conv2DTranspose:strides", "Conv2D:dilation_rate",
      "DepthwiseConv2D", "DepthwiseConv2D:depth_multiplier", "Conv2D:relu", "GlobalAveragePooling2D", "Dense",
      "loss:categorical_crossentropy", "optimizer:Adam", "api:Sequential"],
     seq((5, 5, 3), lambda: L.Conv2D(16, 3, padding="same", activation="relu"),
         lambda: L.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),
         lambda: L.Conv2D(16, 3, dilation_rate=2, padding="same", activation="relu"),
         lambda: L.DepthwiseConv2D(3, depth_multiplier=2),
         lambda: L.Conv2DTranspose(16, 2, strides=3),
         lambda: L.GlobalAveragePooling2D(), lambda: L.Dense(3, activation="softmax")),
     comp("categorical_crossentropy", adam(0.01)),
     dense_data((5, 5, 3), cat(3), n_pred=8, n_train=16),
     scenario="16 and 32 channels, so Kiln's runtime convolution kernels run the new layers' primitives: the "
              "transposed convolutions (conv2d_grad_input forward, conv2d and filter gradients backward) and the "
              "dilated kernel through the direct conv2d; a depthwise pass 16 -> 32 channels (depth_multiplier 2)")

case("conv2d_groups",
     ["Conv2D", "Conv2D:groups", "Conv2D:same", "Conv2D:channels_first", "Conv2D:relu", "Flatten", "Dense",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((6, 6, 4), lambda: L.Conv2D(6, 3, padding="same", groups=2, activation="relu"),
         lambda: L.Conv2D(4, 2, strides=2, groups=2, data_format="channels_first"),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((6, 6, 4), reg(2), n_pred=8, n_train=20),
     scenario="grouped convolutions: 4 channels in 2 groups of 2, each group's 3 filters reading its own "
              "channels (kernel (3, 3, 2, 6)); then groups=2 channels_first on (6, 6, 6) read as 6 channels")

case("conv2d_transpose_output_padding_dilated",
     ["Conv2DTranspose", "Conv2DTranspose:output_padding", "Conv2DTranspose:same", "Conv2DTranspose:valid",
      "Conv2DTranspose:dilation_rate", "Conv2DTranspose:strides", "Flatten", "Dense", "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((3, 4, 2), lambda: L.Conv2DTranspose(3, (3, 4), strides=2, padding="same", output_padding=(1, 0), activation="relu"),
         lambda: L.Conv2DTranspose(2, 3, strides=(3, 2), output_padding=(2, 1)),
         lambda: L.Conv2DTranspose(2, (2, 3), dilation_rate=2, padding="same", activation="tanh"),
         lambda: L.Conv2DTranspose(2, 2, dilation_rate=(1, 2)),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.02)),
     dense_data((3, 4, 2), reg(2), n_pred=8, n_train=20),
     scenario="transposed convolutions with output_padding ('same' 3x4 -> 6x7 with (1, 0); 'valid' -> 18x15 with "
              "(2, 1)) and dilated kernels (a 2x3 kernel dilated 2, 'same'; a 2x2 dilated (1, 2), 'valid')")

case("upsampling2d_bilinear",
     ["UpSampling2D", "UpSampling2D:bilinear", "UpSampling2D:channels_first", "Conv2D", "Conv2D:same", "Flatten", "Dense",
      "loss:mse", "optimizer:SGD", "api:Sequential"],
     seq((3, 4, 2), lambda: L.UpSampling2D((2, 3), interpolation="bilinear"),
         lambda: L.Conv2D(3, 3, padding="same", activation="relu"),
         lambda: L.UpSampling2D((3, 2), interpolation="bilinear", data_format="channels_first"),
         lambda: L.Flatten(), lambda: L.Dense(2)),
     comp("mse", sgd(0.05)),
     dense_data((3, 4, 2), reg(2), n_pred=8, n_train=20),
     scenario="bilinear upsampling as jax.image.resize does it (half-pixel centres, edges clamped): 3x4 -> 6x12, "
              "then channels_first on (6, 12, 3) read as 6 channels of 12x3 -> 36x6")
