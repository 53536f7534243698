"""labgpt's reward-model head: a scalar score on the last non-pad token (TRL RewardTrainer, PPO's value model).

The same trunk as the causal LM (lab/model/labgpt.py's LabGPTModel) under transformers' generic weight names,
so a reward model starts from a causal-LM stage's checkpoint with only its head new. Importing this module
registers the head with `AutoModelForSequenceClassification`. Use: `LabGPTForSequenceClassification(config)`,
or `AutoModelForSequenceClassification.from_pretrained(stage_dir, num_labels=1)` once `lab.model.labgpt_rm`
is imported (rewards/proxy.py's `load_reward_model` does both).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutputWithPast

from lab.model.cache import CACHE_FIELD
from lab.model.labgpt import LabGPTConfig, LabGPTModel, LabGPTPreTrainedModel


class LabGPTForSequenceClassification(LabGPTPreTrainedModel):
    """Scalar head on the last non-pad token: the reward model (TRL RewardTrainer, num_labels=1).

    Weight names are transformers' generic ones (`model.*`, `score.weight`), so reward models saved
    before this head was ours load unchanged."""

    # A reward model starts from a causal LM's checkpoint: its head is new and lm_head is left out, by design.
    _keys_to_ignore_on_load_missing = [r"^score\.weight$"]
    _keys_to_ignore_on_load_unexpected = [r"^lm_head\."]

    def __init__(self, config: LabGPTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = LabGPTModel(config)
        self.score = nn.Linear(config.hidden_size, self.num_labels, bias=False)
        self.post_init()

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        inputs_embeds=None,
        labels=None,
        use_cache=None,
        output_attentions=False,
        output_hidden_states=False,
        cache=None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=past_key_values,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        logits = self.score(out.last_hidden_state)
        batch = logits.shape[0]
        if input_ids is not None and self.config.pad_token_id is not None:
            # the rightmost non-pad token, so left and right padding both work
            real = (input_ids != self.config.pad_token_id).to(logits.device, torch.int32)
            last = (torch.arange(input_ids.shape[-1], device=logits.device, dtype=torch.int32) * real).argmax(-1)
        elif batch == 1:
            last = -1
        else:
            raise ValueError("a batch of more than one sequence needs input_ids and config.pad_token_id to find each end")
        pooled = logits[torch.arange(batch, device=logits.device), last]
        loss = None
        if labels is not None:
            if self.num_labels == 1:
                loss = F.mse_loss(pooled.squeeze(-1).float(), labels.float().reshape(-1))
            else:
                loss = F.cross_entropy(pooled.float(), labels.reshape(-1))
        return SequenceClassifierOutputWithPast(
            loss=loss,
            logits=pooled,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
            **{CACHE_FIELD: out.get(CACHE_FIELD)},
        )


AutoModelForSequenceClassification.register(LabGPTConfig, LabGPTForSequenceClassification, exist_ok=True)
