"""A HiFi-GAN decoder for batched VITS inference: frames past each item's length stay zero at every layer.

transformers' ``VitsHifiGan`` decodes one padded batch as a whole, so the activations of padded frames (a conv's
bias, then its neighbours) leak into the last real samples of shorter items, and a batch no longer sounds like the
same sentences run one by one. Masking after every convolution makes a padded frame look exactly like the zero
padding an unbatched convolution sees. It also offers HiFi-GAN's ResBlock2 (two dilated convs per block), which Piper
"medium" voices use and ``VitsHifiGan`` lacks. Parameter names follow ``VitsHifiGan``, so MMS checkpoints load as is.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.models.vits.modeling_vits import HifiGanResidualBlock, VitsConfig

RESBLOCK_KINDS = ("1", "2")
"""HiFi-GAN's two residual blocks: "1" (VitsHifiGan's, three pairs of convs) and "2" (one dilated conv per step)."""


def _padding(kernel_size: int, dilation: int) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(HifiGanResidualBlock):
    """transformers' residual block, with the padded frames zeroed after each conv."""

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        for conv1, conv2 in zip(self.convs1, self.convs2, strict=True):
            residual = hidden_states
            hidden_states = _masked(conv1(nn.functional.leaky_relu(hidden_states, self.leaky_relu_slope)), mask)
            hidden_states = _masked(conv2(nn.functional.leaky_relu(hidden_states, self.leaky_relu_slope)), mask)
            hidden_states = hidden_states + residual
        return hidden_states


class ResBlock2(nn.Module):
    """HiFi-GAN's ResBlock2, as in VITS and Piper: one dilated conv per step, each with its own residual."""

    def __init__(self, channels: int, kernel_size: int, dilation: tuple[int, ...], leaky_relu_slope: float) -> None:
        super().__init__()
        self.leaky_relu_slope = leaky_relu_slope
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_padding(kernel_size, d)) for d in dilation
        )

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for conv in self.convs:
            step = conv(nn.functional.leaky_relu(hidden_states, self.leaky_relu_slope))
            hidden_states = _masked(step, mask) + hidden_states
        return hidden_states


def _masked(hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    return hidden_states if mask is None else hidden_states * mask


def frame_mask(lengths: torch.Tensor, frames: int, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 1, frames): 1 where a frame belongs to its item, 0 in the padding."""
    positions = torch.arange(frames, device=lengths.device)
    return (positions.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1).to(dtype)


class MaskedHifiGan(nn.Module):
    """``VitsHifiGan`` with per-item lengths: ``forward(spectrogram, lengths)`` where lengths are in frames."""

    def __init__(self, config: VitsConfig, resblock: str = "1") -> None:
        super().__init__()
        if resblock not in RESBLOCK_KINDS:
            raise ValueError(f"resblock must be one of {RESBLOCK_KINDS}, got {resblock!r}")
        self.config = config
        self.num_kernels = len(config.resblock_kernel_sizes)
        self.upsample_rates = list(config.upsample_rates)
        self.conv_pre = nn.Conv1d(config.flow_size, config.upsample_initial_channel, kernel_size=7, padding=3)
        self.upsampler = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        channels = config.upsample_initial_channel
        for i, (rate, kernel_size) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True)):
            channels = config.upsample_initial_channel // (2 ** (i + 1))
            self.upsampler.append(
                nn.ConvTranspose1d(
                    channels * 2, channels, kernel_size=kernel_size, stride=rate, padding=(kernel_size - rate) // 2
                )
            )
            for block_kernel, dilation in zip(
                config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True
            ):
                block: nn.Module = (
                    ResBlock1(channels, block_kernel, tuple(dilation), config.leaky_relu_slope)
                    if resblock == "1"
                    else ResBlock2(channels, block_kernel, tuple(dilation), config.leaky_relu_slope)
                )
                self.resblocks.append(block)
        self.conv_post = nn.Conv1d(channels, 1, kernel_size=7, padding=3, bias=False)
        if config.speaker_embedding_size != 0:
            self.cond = nn.Conv1d(config.speaker_embedding_size, config.upsample_initial_channel, 1)

    def forward(
        self,
        spectrogram: torch.Tensor,
        lengths: torch.Tensor | None = None,
        global_conditioning: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(batch, 1, samples). ``lengths`` None: no padding to mask (a batch of one)."""
        hidden_states = self.conv_pre(spectrogram)
        if global_conditioning is not None:
            hidden_states = hidden_states + self.cond(global_conditioning)
        scale = 1
        mask = None if lengths is None else frame_mask(lengths, hidden_states.shape[-1], hidden_states.dtype)
        hidden_states = _masked(hidden_states, mask)
        for i, rate in enumerate(self.upsample_rates):
            hidden_states = nn.functional.leaky_relu(hidden_states, self.config.leaky_relu_slope)
            hidden_states = self.upsampler[i](hidden_states)
            scale *= rate
            if lengths is not None:
                mask = frame_mask(lengths * scale, hidden_states.shape[-1], hidden_states.dtype)
                hidden_states = hidden_states * mask
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            res_state = blocks[0](hidden_states, mask)
            for block in blocks[1:]:
                res_state = res_state + block(hidden_states, mask)
            hidden_states = res_state / self.num_kernels
        hidden_states = nn.functional.leaky_relu(hidden_states)  # VITS: the default slope (0.01) here, not 0.1
        return torch.tanh(self.conv_post(hidden_states))
