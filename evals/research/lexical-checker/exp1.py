import numpy as np, json, checker as C
rows=[r for d in C.DATASETS for r in C.load(d)]
X=C.featurize(rows); y=np.array([r['label'] for r in rows]); ds=np.array([r['dataset'] for r in rows])
g=np.arange(len(rows)); gold=C.load('gold'); Xg=C.featurize(gold); yg=np.array([r['label'] for r in gold])
np.savez('/tmp/feats.npz',X=X,y=y,ds=ds,Xg=Xg,yg=yg)
from sklearn.metrics import roc_auc_score
N=C.CLAIM_FEATURES
def run(names, Cc=1.0, tag=''):
    idx=[N.index(n) for n in names]
    r=C.cross_validate(X[:,idx],y,ds,g,lambda: C.LogReg(Cc),repeats=3)
    m=C.LogReg(Cc).fit(X[:,idx],y,C.balanced_weights(ds,y)); t=C.best_threshold(m.predict_proba(X[:,idx]),y,ds)
    pg=m.predict_proba(Xg[:,idx])
    print(f"{tag:14s} C={Cc}", ' '.join(f"{d[:5]} ba={v['ba_global']:.3f}/{v['ba_perds']:.3f} auc={v['auc']:.3f}" for d,v in r.items()), f"gold ba={C.bacc(yg,pg>=t):.3f} auc={roc_auc_score(yg,pg):.3f}")
core=['min_cov_top1','mean_tri_doc','cov_doc','log_novel_cnt','num_miss_doc','any_num_miss_ev','neg_mismatch','ent_miss_doc']
run(core,1,'core'); run(core,0.1,'core')
run(core+['min_bi_top3','lcs_frac'],0.3,'core+bi')
run(core+['min_cov_top3','wcov_doc'],0.3,'core+cov3')
run(core+['log_len','max_len_ratio'],0.3,'core+len')
run(['min_cov_top1','mean_tri_doc','cov_doc'],1,'3feat')
run(N,0.03,'all')
