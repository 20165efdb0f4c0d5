"""transformers' VitsModel, made to synthesize padded batches: per-item lengths, scales per call, no training parts."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn.utils import parametrize
from transformers import VitsConfig, VitsModel

from .decoder import MaskedHifiGan, frame_mask

RESBLOCK_ATTRIBUTE = "resblock"
"""Extra VitsConfig key naming the decoder's residual block ("1", VitsModel's own, or "2" for Piper medium voices)."""


@dataclass(frozen=True)
class BatchAudio:
    """One batch's output; item i is ``waveform[i, :sample_lengths[i]]``."""

    waveform: torch.Tensor
    """(batch, samples), float in [-1, 1], padded with zeros."""
    sample_lengths: torch.Tensor
    """(batch,) samples of each item."""
    frame_lengths: torch.Tensor
    """(batch,) spectrogram frames of each item: the predicted durations, summed."""


class BatchedVits(VitsModel):
    """A VitsModel whose decoder masks padding, so a padded batch decodes like its items one by one.

    ``from_pretrained`` loads MMS-TTS directories and our converted Piper voices alike (same parameter names)."""

    # MMS checkpoints carry the posterior encoder, which this class drops: expected, not worth a warning.
    _keys_to_ignore_on_load_unexpected = [r"^posterior_encoder\."]  # noqa: RUF012 - transformers reads it as is

    def __init__(self, config: VitsConfig) -> None:
        super().__init__(config)
        self.decoder = MaskedHifiGan(config, str(getattr(config, RESBLOCK_ATTRIBUTE, "1")))  # type: ignore[assignment]
        # Only training uses the posterior encoder; it is the largest part of an MMS checkpoint.
        del self.posterior_encoder

    @property
    def hop_length(self) -> int:
        return math.prod(self.config.upsample_rates)

    def fold_weight_norm(self) -> BatchedVits:
        """Bake weight-norm parametrizations into plain weights: inference recomputes nothing per call."""
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        return self

    @torch.no_grad()
    def synthesize(
        self,
        input_ids: torch.Tensor,
        lengths: torch.Tensor | None = None,
        noise_scale: float = 0.667,
        length_scale: float = 1.0,
        noise_scale_duration: float = 0.8,
        speaker_id: int | None = None,
        frame_multiple: int = 1,
    ) -> BatchAudio:
        """Audio for a batch of id sequences; ``lengths`` None means none is padded (a batch of one).

        ``frame_multiple`` pads the spectrogram to a multiple of that many frames, so a compiled graph meets a few
        shapes again and again rather than a new one per sentence (masking keeps the audio the same)."""
        batch, width = input_ids.shape
        dtype = self.text_encoder.embed_tokens.weight.dtype
        attention_mask = None if lengths is None else frame_mask(lengths, width, torch.long).squeeze(1)
        padding_mask = (
            torch.ones(batch, width, 1, dtype=dtype, device=input_ids.device)
            if attention_mask is None
            else attention_mask.unsqueeze(-1).to(dtype)
        )
        speaker = self._speaker_embedding(speaker_id, batch, input_ids.device)
        encoded = self.text_encoder(
            input_ids=input_ids, padding_mask=padding_mask, attention_mask=attention_mask, return_dict=True
        )
        hidden_states = encoded.last_hidden_state.transpose(1, 2)
        mask = padding_mask.transpose(1, 2)
        if self.config.use_stochastic_duration_prediction:
            log_duration = self.duration_predictor(
                hidden_states, mask, speaker, reverse=True, noise_scale=noise_scale_duration
            )
        else:
            log_duration = self.duration_predictor(hidden_states, mask, speaker)
        duration = torch.ceil(torch.exp(log_duration) * mask * length_scale).squeeze(1)
        frames = torch.clamp_min(duration.sum(-1), 1).long()
        longest = int(frames.max())
        padded_frames = -(-longest // frame_multiple) * frame_multiple
        output_mask = frame_mask(frames, padded_frames, dtype)
        means = _expand(encoded.prior_means, duration, output_mask)
        log_variances = _expand(encoded.prior_log_variances, duration, output_mask)
        prior = means + torch.randn_like(means) * torch.exp(log_variances) * noise_scale
        latents = self.flow(prior, output_mask, speaker, reverse=True)
        unpadded = lengths is None and padded_frames == longest
        waveform = self.decoder(latents * output_mask, None if unpadded else frames, speaker)
        return BatchAudio(waveform.squeeze(1), frames * self.hop_length, frames)

    def _speaker_embedding(self, speaker_id: int | None, batch: int, device: torch.device) -> torch.Tensor | None:
        if self.config.num_speakers <= 1:
            return None
        if speaker_id is None or not 0 <= speaker_id < self.config.num_speakers:
            raise ValueError(f"speaker_id must be in 0-{self.config.num_speakers - 1}, got {speaker_id!r}")
        ids = torch.full((batch,), speaker_id, dtype=torch.long, device=device)
        return self.embed_speaker(ids).unsqueeze(-1)


def quiet_transformers() -> None:
    """transformers' progress bars (loading and writing weights) are noise in a worker's log."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _expand(stats: torch.Tensor, duration: torch.Tensor, output_mask: torch.Tensor) -> torch.Tensor:
    """Repeat each input position's (batch, length, channels) stats for its frames: (batch, channels, frames).

    VitsModel builds a (batch, frames, length) alignment matrix for this; an index per frame holds the same values
    (each frame takes exactly one position) in a fraction of the memory, which matters at batch 64."""
    ends = torch.cumsum(duration, -1).contiguous()
    frames = output_mask.shape[-1]
    positions = torch.arange(frames, device=duration.device, dtype=ends.dtype).expand(ends.shape[0], frames)
    index = torch.searchsorted(ends, positions.contiguous(), right=True).clamp_max(stats.shape[1] - 1)
    expanded = torch.gather(stats, 1, index.unsqueeze(-1).expand(-1, -1, stats.shape[-1]))
    return expanded.transpose(1, 2) * output_mask
