"""SAM 2 and SAM 2.1 (Ravi et al., 2024): a Hiera image encoder with an FPN neck, SAM's
prompt encoder and a mask decoder with high-resolution skips and an object-score head, and for
video a memory encoder, memory attention and object pointers. Laid out exactly as Meta's
official `sam2*_hiera_*.pt` checkpoints so that they load unchanged."""
