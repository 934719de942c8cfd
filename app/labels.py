"""Display text the pages share: names of the compared edit variants and help for the gate's scope.

Kept in the app, not the core: the core names variants by their keys ("unedited", "learned",
"control"; "subject", "all") and only the pages show these words.
"""

#: The three states compared next to an edit with its control (keys of ``StudioSession.pair_answers``).
PAIR_VARIANTS = {"unedited": "Unedited", "learned": "Learned gate (Neural Gate)",
                 "control": "Random gate of the same size (control)"}

#: One sentence per gate position (``Gate.where``).
GATE_WHERE_HELP = {
    "subject": "Scale the neurons only at the subject's last token (where Neural Gate finds and edits them).",
    "all": "Scale the neurons at every position: the prompt, the image tokens and each generated token.",
}
