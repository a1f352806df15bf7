// VisualCritic's frontend extension (plain JS, no build step; ComfyUI serves it from WEB_DIRECTORY).
//
// 1. The stock frontend draws a node's `ui.images` but not its `ui.text`: every VisualCritic node
//    that sends text (Score, Rerank, Report, Gated KSampler, Prompt Feedback, Objective, Sample
//    Images, Quality Map, Keep Better) gets it shown in a read-only text box on the node, made with
//    the frontend's own multiline STRING widget, as its core "Preview Any" node and the popular
//    "show text" nodes do. The box is added on the first result, so nodes keep their size until then.
// 2. Workflows saved before Rerank lost its 14 objective widgets still load: their values are
//    turned into the objective text (the same rule the node used to apply).
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const TEXT_WIDGET = "visualcritic_text";
const TEXT_BOX_ROOM = 60; // px added to a node when its text box appears: about four lines
const ATTRIBUTES = ["brightness", "colorfulness", "contrast", "noisiness", "sharpness"];
// Rerank's widgets before the Objective node: mos_weight, (weight, target) per attribute,
// photo_preference, min_mos, min_score, top_k, objective_text.
const LEGACY_RERANK_VALUES = 16;

function showText(node, lines) {
    const text = Array.isArray(lines) ? lines.join("\n") : String(lines ?? "");
    let widget = node.widgets?.find((w) => w.name === TEXT_WIDGET);
    const created = !widget;
    if (created) {
        widget = ComfyWidgets.STRING(node, TEXT_WIDGET, ["STRING", { multiline: true }], app).widget;
        widget.label = "result";
        widget.serialize = false; // a result, not a setting: never saved with the node's widgets
        if (widget.options) {
            widget.options.serialize = false; // nor sent to the server as an input
            widget.options.read_only = true;
        }
    }
    const box = widget.inputEl ?? widget.element; // the textarea (1.x frontends also call it element)
    if (box) {
        box.readOnly = true;
        box.classList.add("visualcritic-text");
        box.style.opacity = "0.85";
    }
    widget.value = text;
    if (box) box.value = text;
    // room for a new box (a few lines) unless the node has it already; later results reuse the box
    const wanted = node.computeSize();
    const height = Math.max(node.size[1], wanted[1] + (created ? TEXT_BOX_ROOM : 0));
    node.setSize([Math.max(node.size[0], wanted[0]), height]);
    app.graph.setDirtyCanvas(true, true);
}

function legacyRerankObjective(values) {
    const typed = String(values[15] ?? "").trim();
    const parts = [];
    if (typed) {
        parts.push(typed);
    } else {
        if (values[0]) parts.push(`mos=${values[0]}`);
        ATTRIBUTES.forEach((name, i) => {
            const weight = values[1 + 2 * i], target = values[2 + 2 * i];
            if (weight) parts.push(target > 0 ? `${name}@${target}=${weight}` : `${name}=${weight}`);
        });
        if (values[11]) parts.push(`photo=${values[11]}`);
    }
    if (values[12] && !typed.includes("min:mos")) parts.push(`min:mos=${values[12]}`);
    if (values[13] && !typed.includes("min:score")) parts.push(`min:score=${values[13]}`);
    return parts.join(", ");
}

app.registerExtension({
    name: "VisualCritic.NodeText",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (!nodeData?.name?.startsWith("VisualCritic")) return;
        const onExecuted = nodeType.prototype.onExecuted;
        nodeType.prototype.onExecuted = function (message) {
            const result = onExecuted?.apply(this, arguments);
            if (message?.text) {
                try {
                    showText(this, message.text);
                } catch (err) { // never break the frontend's own handling of the result
                    console.error(`VisualCritic: cannot show the text of node #${this.id}`, err);
                }
            }
            return result;
        };
        if (nodeData.name !== "VisualCriticRerank") return;
        const onConfigure = nodeType.prototype.onConfigure;
        nodeType.prototype.onConfigure = function (info) {
            const result = onConfigure?.apply(this, arguments);
            const values = info?.widgets_values;
            if (Array.isArray(values) && values.length === LEGACY_RERANK_VALUES) {
                const set = (name, value) => {
                    const widget = this.widgets?.find((w) => w.name === name);
                    if (widget) widget.value = value;
                };
                set("top_k", values[14]);
                set("objective_text", legacyRerankObjective(values));
                console.info(`VisualCritic: Rerank #${this.id} migrated to objective "${legacyRerankObjective(values)}"`);
            }
            return result;
        };
    },
});
