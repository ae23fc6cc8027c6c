"""The linear-chain CRF's two computations, in keras.ops only (any Keras 3 backend).

Shapes: emissions (batch, T, n) float; mask (batch, T) bool; tags (batch, T) int;
transitions (n, n) with transitions[i, j] the score of tag i followed by tag j; start and
end (n,). Masked steps are skipped: the chain links consecutive unmasked steps.

Both walk the time axis with `keras.ops.scan`. Each step returns its carry as its output
too, because the TensorFlow backend's scan requires the outputs to match the carry.
"""
from keras import ops


def _time_major(x):
    return ops.moveaxis(x, 1, 0)


def nll(emissions, tags, mask, transitions, start, end):
    """Negative log-likelihood of `tags` per sequence, shape (batch,): logZ - score(tags).

    logZ comes from the forward algorithm in log space; a sequence with no unmasked step
    has NLL 0. Tag values at masked steps are ignored.
    """
    dtype = emissions.dtype
    n = emissions.shape[-1]
    mask = ops.cast(mask, "bool")
    tags = ops.where(mask, ops.cast(tags, "int32"), 0)
    onehot = ops.one_hot(tags, n, dtype=dtype)                   # (batch, T, n)
    transitions = ops.cast(transitions, dtype)
    start = ops.cast(start, dtype)
    end = ops.cast(end, dtype)

    zeros_n = ops.zeros_like(emissions[:, 0, :])
    init = (zeros_n,                        # alpha: log-sum of the paths ending in each tag
            ops.zeros_like(mask[:, 0]),      # seen: an unmasked step came before
            zeros_n,                         # the one-hot tag at the last unmasked step
            ops.zeros_like(emissions[:, 0, 0]))   # the score of the given tags so far

    def step(carry, x):
        alpha, seen, prev, score = carry
        e, m, y = x
        first = start[None, :] + e
        later = ops.logsumexp(alpha[:, :, None] + transitions[None, :, :], axis=1) + e
        alpha = ops.where(m[:, None], ops.where(seen[:, None], later, first), alpha)
        link = ops.where(seen, ops.sum(ops.matmul(prev, transitions) * y, axis=-1),
                         ops.sum(start[None, :] * y, axis=-1))
        score = ops.where(m, score + ops.sum(e * y, axis=-1) + link, score)
        prev = ops.where(m[:, None], y, prev)
        seen = ops.logical_or(seen, m)
        carry = (alpha, seen, prev, score)
        return carry, carry

    (alpha, seen, prev, score), _ = ops.scan(
        step, init, (_time_major(emissions), _time_major(mask), _time_major(onehot)))
    log_z = ops.logsumexp(alpha + end[None, :], axis=-1)
    gold = score + ops.sum(prev * end[None, :], axis=-1)
    return ops.where(seen, log_z - gold, ops.zeros_like(gold))


def viterbi(emissions, mask, transitions, start, end):
    """The highest-scoring tag path, int32 (batch, T); 0 at masked steps.

    Ties go to the lowest tag id at every maximum (the final tag and each back-pointer).
    """
    dtype = emissions.dtype
    n = emissions.shape[-1]
    mask = ops.cast(mask, "bool")
    transitions = ops.cast(transitions, dtype)
    start = ops.cast(start, dtype)
    end = ops.cast(end, dtype)

    zeros_n = ops.zeros_like(emissions[:, 0, :])
    no_pointer = ops.cast(zeros_n, "int32")
    init = (zeros_n, ops.zeros_like(mask[:, 0]), no_pointer)

    def forward(carry, x):
        delta, seen, _ = carry
        e, m = x
        cand = delta[:, :, None] + transitions[None, :, :]     # (batch, from, to)
        pointer = ops.cast(ops.argmax(cand, axis=1), "int32")  # first maximum: lowest id
        later = ops.max(cand, axis=1) + e
        delta = ops.where(m[:, None], ops.where(seen[:, None], later, start[None, :] + e), delta)
        seen = ops.logical_or(seen, m)
        carry = (delta, seen, pointer)
        return carry, carry

    mask_tm = _time_major(mask)
    (delta, _, _), (_, _, pointers) = ops.scan(forward, init, (_time_major(emissions), mask_tm))
    last = ops.cast(ops.argmax(delta + end[None, :], axis=-1), "int32")

    def backward(carry, x):
        tag, _ = carry
        pointer, m = x
        out = ops.where(m, tag, ops.zeros_like(tag))
        before = ops.squeeze(ops.take_along_axis(pointer, tag[:, None], axis=1), axis=1)
        carry = (ops.where(m, before, tag), out)
        return carry, carry

    _, (_, path) = ops.scan(backward, (last, ops.zeros_like(last)), (pointers, mask_tm),
                            reverse=True)
    return ops.cast(_time_major(path), "int32")
