"""Web forms: what a person types, checked before any service is called."""
from __future__ import annotations

from django import forms


class AddModelForm(forms.Form):
    source = forms.CharField(
        label="Hugging Face URL or magnet link",
        max_length=4000,
        widget=forms.TextInput(attrs={"placeholder": "Paste a Hugging Face link or a magnet link",
                                      "autocomplete": "off", "spellcheck": "false"}),
    )
    file_name = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)
    create_torrent = forms.BooleanField(label="Share it over BitTorrent when done", required=False, initial=True)

    def clean_source(self) -> str:
        return self.cleaned_data["source"].strip()

    @property
    def is_magnet(self) -> bool:
        return self.cleaned_data["source"].lower().startswith("magnet:")


class ServeForm(forms.Form):
    port = forms.IntegerField(label="Port", required=False, min_value=1024, max_value=65535,
                              help_text="Empty: a free port")
    context_size = forms.IntegerField(label="Context size", required=False, min_value=128, max_value=1_048_576,
                                      help_text="Tokens")
    threads = forms.IntegerField(label="Threads", required=False, min_value=1, max_value=512)
    gpu_layers = forms.IntegerField(label="GPU layers", required=False, min_value=0, max_value=1000)


class DeleteForm(forms.Form):
    delete_files = forms.BooleanField(label="Also delete its files from disk", required=False)
