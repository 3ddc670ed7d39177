import numpy as np, checker as C, sys
from sklearn.metrics import roc_auc_score
rows=[r for d in C.DATASETS for r in C.load(d)]
N=C.CLAIM_FEATURES
X=C.featurize(rows); y=np.array([r['label'] for r in rows]); ds=np.array([r['dataset'] for r in rows])
docs=list(dict.fromkeys(r['document'] for r in rows)); gid={d:i for i,d in enumerate(docs)}
g=np.array([gid[r['document']] for r in rows])
srows=C.synth_rows(docs, seed=0, n=3); Xs=C.featurize(srows); ys=np.array([r['label'] for r in srows]); gs=np.array([gid[r['document']] for r in srows])
gold=C.load('gold'); Xg=C.featurize(gold); yg=np.array([r['label'] for r in gold])
np.savez('/tmp/feats2.npz',X=X,y=y,ds=ds,g=g,Xs=Xs,ys=ys,gs=gs,Xg=Xg,yg=yg)
print('synth', len(srows), ys.mean())
def run(names, Cc=1.0, tag='', sw=0.0, model='lr'):
    idx=[N.index(n) for n in names]
    mk=(lambda: C.LogReg(Cc)) if model=='lr' else (lambda: C.GBM())
    syn=(Xs[:,idx],ys,gs) if sw>0 else None
    r=C.cross_validate(X[:,idx],y,ds,g,mk,repeats=3,synth=syn,synth_weight=sw)
    w=C.balanced_weights(ds,y); Xt,yt=X[:,idx],y
    if sw>0:
        ws=C.balanced_weights(np.zeros(len(ys)),ys)*sw*len(y)/(3*len(ys)); Xt=np.vstack([Xt,Xs[:,idx]]); yt=np.concatenate([y,ys]); w=np.concatenate([w,ws])
    m=mk().fit(Xt,yt,w); t=C.best_threshold(m.predict_proba(X[:,idx]),y,ds)
    pg=m.predict_proba(Xg[:,idx])
    print(f"{tag:10s} C={Cc} sw={sw}", ' '.join(f"{d[:5]} ba={v['ba_global']:.3f}/{v['ba_perds']:.3f} auc={v['auc']:.3f}" for d,v in r.items()), f"gold ba={C.bacc(yg,pg>=t):.3f} auc={roc_auc_score(yg,pg):.3f}", flush=True)
    return m
core=['min_cov_top1','mean_tri_doc','cov_doc','log_novel_cnt','num_miss_doc','any_num_miss_ev','neg_mismatch','ent_miss_doc']
for sw in [0,0.5,1,2]:
    run(N,0.03,'all',sw); run(core+['min_bi_top3','lcs_frac'],0.3,'core+bi',sw)
run(N,0.1,'all',1); run(N,0.01,'all',1)
run(N,0,'gbm',1,'gbm')
