"""The `robustness:` settings of a suite, apart from the code that evaluates them: a suite is checked and a cell's id
computed (`promptshift plan`) without importing torch."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench.eval.budgets import parse_budget

# The 15 common corruptions of ImageNet-C (Hendrycks & Dietterich, ICLR 2019), in the library's order.
COMMON_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression")


class RobustnessConfig(BaseModel):
    """The `robustness:` mapping of a suite; every cell of the suite gets it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subset_size: int = Field(64, ge=1, description="images per evaluation set (fixed, seeded subset)")
    batch_size: int = Field(64, ge=1, description="images per attack/eval batch")
    eps: tuple[str, ...] = Field(("1/255", "2/255", "4/255", "8/255"), description="L-inf budgets, e.g. '8/255'")
    fgsm: bool = Field(True, description="run FGSM at every budget")
    pgd: bool = Field(True, description="run PGD at every budget")
    pgd_steps: int = Field(10, ge=1, description="PGD iterations")
    pgd_step_size: float | None = Field(None, gt=0, description="PGD step as a fraction of eps; None: "
                                        "2.5 / pgd_steps (Madry et al.: all steps together travel 2.5 eps)")
    pgd_random_start: bool = Field(True, description="PGD starts from a uniform point in the eps-ball")
    autoattack: bool = Field(True, description="run standard AutoAttack (pyautoattack) at `autoattack_eps`")
    autoattack_eps: str = Field("8/255", description="AutoAttack's L-inf budget")
    autoattack_version: Literal["standard"] = Field("standard", description="AutoAttack version")
    autoattack_subset_size: int = Field(16, ge=1, description="images per evaluation set for AutoAttack (slow)")
    corruptions: bool = Field(True, description="evaluate the common corruptions")
    corruption_names: tuple[str, ...] = Field(COMMON_CORRUPTIONS, description="which corruptions")
    severities: tuple[int, ...] = Field((1, 2, 3, 4, 5), description="corruption severities (1..5)")

    @field_validator("eps", mode="before")
    @classmethod
    def _budgets(cls, value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, (str, float, int)) else list(value)
        values = [parse_budget(item) for item in items]
        if len(set(values)) != len(values):
            raise ValueError(f"budgets {items} repeat a value")
        return tuple(str(item).replace(" ", "") for item in items)

    @field_validator("autoattack_eps", mode="before")
    @classmethod
    def _aa_budget(cls, value: Any) -> str:
        parse_budget(value)
        return str(value).replace(" ", "")

    @field_validator("corruption_names")
    @classmethod
    def _known_corruptions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in COMMON_CORRUPTIONS]
        if unknown:
            raise ValueError(f"unknown corruption(s) {unknown}; valid: {list(COMMON_CORRUPTIONS)}")
        return value

    @field_validator("severities")
    @classmethod
    def _severity_range(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(s not in (1, 2, 3, 4, 5) for s in value):
            raise ValueError(f"severities must be integers in 1..5, got {list(value)}")
        return value

    @property
    def pgd_step_fraction(self) -> float:
        return self.pgd_step_size if self.pgd_step_size is not None else 2.5 / self.pgd_steps

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "RobustnessConfig":
        """Validate a plain mapping; errors name the offending field(s) and list the valid ones."""
        try:
            return cls.model_validate(dict(values or {}))
        except ValidationError as error:
            problems = "; ".join(f"robustness.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
            raise ValueError(f"{problems} (valid fields: {sorted(cls.model_fields)})") from None
