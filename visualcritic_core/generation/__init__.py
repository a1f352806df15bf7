"""Act on the critic inside a diffusers generation loop.

    from diffusers import DiffusionPipeline
    from visualcritic_core import load_critic
    from visualcritic_core.generation import best_of_n, regenerate_until, tune_prompt

    pipe = DiffusionPipeline.from_pretrained("stable-diffusion-v1-5/stable-diffusion-v1-5")
    result = best_of_n(pipe, "a red fox in snow", n=8, critic=load_critic("signal"), seed=0)
    result.best_image.save("best.png")

`loops` holds the three loops, `repair` local repair by inpainting (`repair_regions`),
`results` what they return (and `replay`), `pipeline` how the pipeline is called (seeds,
batches, memory turns).
"""
from .loops import best_of_n, regenerate_until, tune_prompt
from .pipeline import GENERATOR_DEVICE, make_generators
from .repair import RepairResult, repair_regions
from .results import GenerationResult, TuneResult, UntilResult, replay

__all__ = [
    "GENERATOR_DEVICE", "GenerationResult", "RepairResult", "TuneResult", "UntilResult", "best_of_n",
    "make_generators", "regenerate_until", "repair_regions", "replay", "tune_prompt",
]
