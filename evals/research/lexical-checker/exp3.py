import numpy as np, checker as C
from sklearn.metrics import roc_auc_score
d=np.load('/tmp/feats2.npz'); e=np.load('/tmp/emb.npz')
X,y,ds,g,Xs,ys,gs,Xg,yg=[d[k] for k in 'X y ds g Xs ys gs Xg yg'.split()]
def run(X,Xs,Xg,Cc,sw,tag):
    syn=(Xs,ys,gs) if sw>0 else None
    r=C.cross_validate(X,y,ds,g,lambda: C.LogReg(Cc),repeats=3,synth=syn,synth_weight=sw)
    w=C.balanced_weights(ds,y); Xt,yt=X,y
    if sw>0:
        ws=C.balanced_weights(np.zeros(len(ys)),ys)*sw*len(y)/(3*len(ys)); Xt=np.vstack([X,Xs]); yt=np.concatenate([y,ys]); w=np.concatenate([w,ws])
    m=C.LogReg(Cc).fit(Xt,yt,w); t=C.best_threshold(m.predict_proba(X),y,ds); pg=m.predict_proba(Xg)
    print(f"{tag:8s} C={Cc} sw={sw}", ' '.join(f"{k[:5]} ba={v['ba_global']:.3f}/{v['ba_perds']:.3f} auc={v['auc']:.3f}" for k,v in r.items()), f"gold ba={C.bacc(yg,pg>=t):.3f} auc={roc_auc_score(yg,pg):.3f}", flush=True)
for sw in [0,0.5]:
    run(X,Xs,Xg,0.03,sw,'lex'); run(np.hstack([X,e['E']]),np.hstack([Xs,e['Es']]),np.hstack([Xg,e['Eg']]),0.03,sw,'lex+emb')
