"""The sample data's manifest: every file, where it comes from (public repository, pinned commit, path), its SHA-256
and the group it belongs to. ``tools.sample_data`` downloads, imports and verifies what is listed here."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

# Sets a user selects (``--only``), each the union of groups; every manifest entry is in exactly one group.
# brain_mri_quick: the quick-start subset (six training subjects and the two held-out ones); brain_mri: all 23
# co-registered subjects; brain_mri_raw: two raw clinical studies on mixed grids.
GROUPS = ("brain_mri_quick", "brain_mri_more", "brain_mri_raw", "ct", "registration")
SETS: dict[str, tuple[str, ...]] = {
    "brain_mri_quick": ("brain_mri_quick",),
    "brain_mri": ("brain_mri_quick", "brain_mri_more"),
    "brain_mri_raw": ("brain_mri_raw",),
    "ct": ("ct",),
    "registration": ("registration",),
    "ct_extended": ("ct_extended",),
}
# sets downloaded only when named (``--only ct_extended``): 356 MB of DICOM slices, never needed by the tests
OPT_IN_SETS = ("ct_extended",)
LISTS = Path(__file__).resolve().parent / "sample_lists"  # the extended set's lists, as published beside the data

@dataclass(frozen=True)
class Entry:
    path: str  # relative to the data root
    group: str
    repo: Optional[str]  # owner/name on GitHub; None = local import only
    commit: Optional[str]
    origin: Optional[str]  # path inside the repository
    sha256: Optional[str]  # the file's SHA-256; None where only its git blob id is listed
    gzip_mtime: Optional[int] = None  # rewrite the gzip header (no name, this mtime) after download
    git_blob_sha1: Optional[str] = None  # SHA-1 of b"blob <size>\0" + content: what git itself checks

    @property
    def local_only(self) -> bool:
        return self.repo is None


_AURORA = ("BrainLesion/preprocessing", "b9c60df39d7ca4371a1d7dc96b05197491a50a15")
_TCGA = ("BrainLesion/preprocessing", "7754299d86f4c818d79771efa585d1e493c9fb7c")
_TCGA_DIR = "example/example_data/TCGA-DU-7294/TCGA-DU-7294_brainles"
_TS = ("wasserth/TotalSegmentator", "0e65a448d557382b1e925276212b3bec7f5aff83")
_TS_DIR = "tests/reference_files"
_VM = ("voxelmorph/voxelmorph", "ca28315d0ba24cd8946ac4f6ed081e049e5264fe")
_MRICRON = ("neurolabusc/MRIcron", "ac40c6acb2ea15d57ac13311954a2d7a579b8d25")
_GLI = ("BrainLesion/tutorials", "a2d3fffe821e0dfd3bb62520985239324eaeda9a")
_GLI_DIR = "BraTS/data/segmentation/BraTS-GLI-00001-000"
_CSTAR = ("neurolabusc/VolumeRenderingData", "d15be4d1863d1372270e38d8fe95bffaf80cce3a")
_SPLEEN = ("ivadomed/data-testing", "794a3075175266758d1bb95d864672a045a7918c")
_FS_MRTRIX = ("MRtrix3/script_test_data", "b89990f5aae924e5cf9d61938ebe209ad2152a90")
_FS_NIIVUE = ("niivue/niivue", "9255c43ce83c8d69ca3fe2d9ea289cc71936e6af")
_DEBIAN_GZIP_MTIME = 0x63C7DEBB  # header of the mricron-data 1.2.20211006+dfsg-4 copies
_BRASYN = ("hongweilibran/BraSyn", "890804083b446f3d6fa0b17a4ef09b174bcd0209")
_BRATS2012 = ("Menna-atef22/MultiPlanar-Reconstruction", "05a9501c6995622cb9d3cda0bad3cbcf88bfae6f")
_BRATS18 = ("koriavinash1/DeepBrainSeg", "5d4f3810f1c776050b6937b6db5b7afa17527efd")
_OPENMS = ("muschellij2/open_ms_data", "65704901f60650824565aa5a4818611aa89716f4")


def _folder(group: str, source: tuple[str, str], origin_dir: str, dest_dir: str,
            files: dict[str, str | tuple[str, str]]) -> list[Entry]:
    """Entries of one folder: ``{file name here: sha256}``, or ``{name here: (name at the origin, sha256)}`` where the
    origin names it otherwise."""
    out = []
    for name, value in files.items():
        origin_name, digest = value if isinstance(value, tuple) else (name, value)
        out.append(Entry(f"{dest_dir}/{name}", group, *source, f"{origin_dir}/{origin_name}", digest))
    return out


_B = "brain_mri/BraTS-MET-00110-000/BraTS-MET-00110-000"
_G = "brain_mri/BraTS-GLI-00001-000/BraTS-GLI-00001-000"
_C = "brain_mri/CSTAR-stroke"
_T = "brain_mri/TCGA-DU-7294"
MANIFEST: list[Entry] = [
    Entry(f"{_G}-t1c.nii.gz", "brain_mri_quick", *_GLI, f"{_GLI_DIR}/BraTS-GLI-00001-000-t1c.nii.gz",
          "4399faadcc45c8a4541313cdf88aced7d835ed59ac3078d950e0eac293d603f5"),
    Entry(f"{_G}-t1n.nii.gz", "brain_mri_quick", *_GLI, f"{_GLI_DIR}/BraTS-GLI-00001-000-t1n.nii.gz",
          "e860924b936e301ddeba20409fbb59dde322475cb49328f1b46a9235c792e73e"),
    Entry(f"{_G}-t2f.nii.gz", "brain_mri_quick", *_GLI, f"{_GLI_DIR}/BraTS-GLI-00001-000-t2f.nii.gz",
          "82aed8546af5e6d8d94fd91c56227abdcf6120130390d1556c4342a208980604"),
    Entry(f"{_G}-t2w.nii.gz", "brain_mri_quick", *_GLI, f"{_GLI_DIR}/BraTS-GLI-00001-000-t2w.nii.gz",
          "4cd389cc57d12134a30a898c66532228126b9a7d0600ee578e82a32144528b51"),
    Entry(f"{_B}-t1c.nii.gz", "brain_mri_quick", *_AURORA, "AURORA/example_data/BraTS-MET-00110-000-t1c.nii.gz",
          "60dea0229037efb7f51e8c61697013094375ad02e24c1924de54035d41d777fe"),
    Entry(f"{_B}-t1n.nii.gz", "brain_mri_quick", *_AURORA, "AURORA/example_data/BraTS-MET-00110-000-t1n.nii.gz",
          "236a6abd90ae5cc116867d9e5f8321a5860fb8e66f0b096703d9853b523a3c86"),
    Entry(f"{_B}-t2f.nii.gz", "brain_mri_quick", *_AURORA, "AURORA/example_data/BraTS-MET-00110-000-t2f.nii.gz",
          "e02de5c2594af4e0b137fc934f16ed7570d109222586e117efc147432ad94f9a"),
    Entry(f"{_B}-t2w.nii.gz", "brain_mri_quick", *_AURORA, "AURORA/example_data/BraTS-MET-00110-000-t2w.nii.gz",
          "42b39f467fb3d73c81e0766d02b198ae84c8d87bdaadc123e7d68eb4873d0fff"),
    Entry(f"{_C}/FLAIR.nii.gz", "brain_mri_quick", *_CSTAR, "stroke/FLAIR.nii.gz",
          "a50cf2bbc22875644fa7f49b3a7d58f0287427a6e37faed9d420ce3495346666"),
    Entry(f"{_C}/T1.nii.gz", "brain_mri_quick", *_CSTAR, "stroke/T1.nii.gz",
          "8e28e653578a2cd21d15064da5b089db16a205887c76baed8a65d01e8f2ab79e"),
    Entry(f"{_C}/T2.nii.gz", "brain_mri_quick", *_CSTAR, "stroke/T2.nii.gz",
          "7cc2d618998228998fb1a9abf3ccfa8ed844aa99d84c9c6bf26b763a44406c89"),
    Entry(f"{_T}/TCGA-DU-7294_fla_bet_normalized.nii.gz", "brain_mri_quick", *_TCGA,
          f"{_TCGA_DIR}/normalized_bet/TCGA-DU-7294_fla_bet_normalized.nii.gz",
          "5df9798cbe2ac43818ce1db5f64b28484bcf8ede77485536a90eaa897e7a6fbe"),
    Entry(f"{_T}/TCGA-DU-7294_t1_bet_normalized.nii.gz", "brain_mri_quick", *_TCGA,
          f"{_TCGA_DIR}/normalized_bet/TCGA-DU-7294_t1_bet_normalized.nii.gz",
          "87d560fe71fc3c24a7341401338fd429c50dd210cb4d22747dc2793c293166ed"),
    Entry(f"{_T}/TCGA-DU-7294_t1c_bet_normalized.nii.gz", "brain_mri_quick", *_TCGA,
          f"{_TCGA_DIR}/normalized_bet/TCGA-DU-7294_t1c_bet_normalized.nii.gz",
          "95a8397077ece76fa5d8249e84031c779f61549382c60ef39a26ad6b497d5a28"),
    Entry(f"{_T}/TCGA-DU-7294_t2_bet_normalized.nii.gz", "brain_mri_quick", *_TCGA,
          f"{_TCGA_DIR}/normalized_bet/TCGA-DU-7294_t2_bet_normalized.nii.gz",
          "b7977676066fa69c1464cd66824888b6ad54cd0283dffcff20d594c2b5763ee5"),
    Entry(f"{_T}/atlas_bet_t1c_mask.nii.gz", "brain_mri_quick", *_TCGA,
          f"{_TCGA_DIR}/brain-extraction/atlas_bet_t1c_mask.nii.gz",
          "af9326165e1099177a0b3e82d7abe662ce39c454b82d1954608811c1fd75db45"),
    Entry("ct/aorta_report_test_result_models_contrast_phase.json", "ct", *_TS,
          f"{_TS_DIR}/aorta_report/test_result/models/contrast_phase.json",
          "02a64b411cd1d0356fe9967b2de2e09f1b3c70f78e325f6b518f8cdb83ffacde"),
    Entry("ct/aorta_report_test_result_models_ct_cropped.nii.gz", "ct", *_TS,
          f"{_TS_DIR}/aorta_report/test_result/models/ct_cropped.nii.gz",
          "f776ecfa1326e7e21a8c30e5530f517c16f16a59a68fc06e8119cefc7c3b87a0"),
    Entry("ct/example_ct.nii.gz", "ct", *_TS, f"{_TS_DIR}/example_ct.nii.gz",
          "dbd3ae6d614d1d7ef3a46925c30c70038ed52da6b37fdd6afdc7b9b71387e3e1"),
    Entry("ct/example_ct_sm.nii.gz", "ct", *_TS, f"{_TS_DIR}/example_ct_sm.nii.gz",
          "e50c00b2914e2cac0aaee8e7f3b5f57d44d9f21bfd5c0577271c54c0cb49e9fb"),
    Entry("ct/example_seg.nii.gz", "ct", *_TS, f"{_TS_DIR}/example_seg.nii.gz",
          "8be652475a4aaae83103a66bfb3345314b1fc06742807a06cf5005f7a7913a2d"),
    Entry("ct/phase_prediction.json", "ct", *_TS, f"{_TS_DIR}/phase_prediction.json",
          "cc719108e4c71aef4166136005f76ccb2bd9a3052d589e59df9634793601161b"),
    Entry("ct/pulmonary_report_models_ct_cropped.nii.gz", "ct", *_TS,
          f"{_TS_DIR}/pulmonary_report/models/ct_cropped.nii.gz",
          "4da078fe43c9aa4d358903ac95105cea4fbe93b029474e4701bdde4db72126eb"),
    Entry("ct/sub-spleen2_ct.nii.gz", "ct", *_SPLEEN, "ct_scan/sub-spleen2/ct/sub-spleen2_ct.nii.gz",
          "a63966cac6b6997dc339a8694a7b792a4807317784741cd8c36f98c88c0d33f9"),
    Entry("ct/sub-spleen2_ct_seg-manual.nii.gz", "ct", *_SPLEEN,
          "ct_scan/derivatives/labels/sub-spleen2/ct/sub-spleen2_ct_seg-manual.nii.gz",
          "1c3399068e678b817e035bea196439130f56aa0fc5fa3cca1391135f953be21b"),
    Entry("registration/aal.nii.gz", "registration", *_MRICRON, "Resources/templates/aal.nii.gz",
          "b512dcd3f36b77f56be7a9a038134096e66314b7e8c31d25875b96bcf6991454", _DEBIAN_GZIP_MTIME),
    Entry("registration/aal.nii.txt", "registration", *_MRICRON, "Resources/templates/aal.nii.txt",
          "1788d6556a9ec056de9867b2382cf1ce1b51b87ae4cfd9cd25de48ae4dde709e"),
    Entry("registration/ch2bet.nii.gz", "registration", *_MRICRON, "Resources/templates/ch2bet.nii.gz",
          "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1", _DEBIAN_GZIP_MTIME),
    Entry("registration/freesurfer-mrtrix3-sub-01/aparc+aseg.mgz", "registration", *_FS_MRTRIX,
          "freesurfer/sub-01/mri/aparc+aseg.mgz", "3e0cfe2f6a70f329d312ee7a1d257e6132bb943f08a43202af198c444d7311bc"),
    Entry("registration/freesurfer-mrtrix3-sub-01/norm.mgz", "registration", *_FS_MRTRIX,
          "freesurfer/sub-01/mri/norm.mgz", "f92a2908da71b07f81daff2a599ea35082dd4cdf0fb33fa6501037cd28db9387"),
    Entry("registration/freesurfer-niivue/aparc.a2009s+aseg.mgz", "registration", *_FS_NIIVUE,
          "packages/niivue/demos/images/aparc.a2009s+aseg.mgz",
          "fca18efe92dc7693b501dc87a1a58fcaab7f5d2d46aaa547eb259a942c37c6c2"),
    Entry("registration/freesurfer-niivue/norm.mgz", "registration", *_FS_NIIVUE,
          "packages/niivue/demos/images/norm.mgz", "bc0cdf794e60a14ca3425942d3a2b5e95884c28c6df967e1ff3a5f1ef518056e"),
    Entry("registration/labels.npz", "registration", *_VM, "data/labels.npz",
          "23d42ff4572fbd87d9d3bb08c36cf5996e49a76a148a3729b765313b3e024beb"),
    Entry("registration/mricron-data.copyright", "registration", None, None, None,
          "43e7d3d89e7f94213847ae742ff2c0d8e2568e8fc862e94726518417df6183eb"),
    Entry("registration/test_scan.npz", "registration", *_VM, "data/test_scan.npz",
          "32b14f2d7027518d9b3689ca0bdb908a1ed402db1a61ff2eb4c8184a475b12e0"),
    *_folder("brain_mri_more", _BRATS2012, "Data/MHA", "brain_mri/BRATS2012-HG0015", {
        "BRATS_HG0015_FLAIR.mha": ("BRATS_HG0015_FLAIR (1).mha", "d99a463f440b686cd9bdeb7be54958c007cdf21b1990002f8fdb9a5118eff045"),
        "BRATS_HG0015_T1.mha": "93348d84834d42ce1c401298ee4af6a8ffb3234b134bcdc35840a90b1d542812",
        "BRATS_HG0015_T1C.mha": ("BRATS_HG0015_T1C (1).mha", "3be3a1556a6a7b87970d4978033b0d0a09e6c35cb20f99b14e7a2c7bc4159a05"),
        "BRATS_HG0015_T2.mha": ("BRATS_HG0015_T2 (1).mha", "c03447d84109cbf93144a62213ef904ed64aa991611c51882064fbf1f116c73e"),
        "BRATS_HG0015_truth.mha": "b6ea2e64e6f3a806089fd394a4896b411e2f6d2c25438cd38a243ff2a93fa875",
    }),
    *_folder("brain_mri_more", _BRASYN, "data/reference/BraTS-GLI-00000-000", "brain_mri/BraTS-GLI-00000-000", {
        "BraTS-GLI-00000-000-seg.nii.gz": "5f74bef54e7c4eda1a8c329c1f73ef863460294525b82e99ac587fe72f10f6c6",
        "BraTS-GLI-00000-000-t1c.nii.gz": "735c27fd7a17b1702875837bcc843eedc88ced6ac2cb0e73cdf995e3e64ba82f",
        "BraTS-GLI-00000-000-t1n.nii.gz": "e92b72ee221624c36cf89ac826deceeee7097f46dd66a5d218d18b7916ebd67d",
        "BraTS-GLI-00000-000-t2f.nii.gz": "bb899a83627591e55cada00b2c6d5402199832b717c8b9f90bb550fe35d971ff",
        "BraTS-GLI-00000-000-t2w.nii.gz": "955ff59d053e87153bb7c809235743ec904817727ec02c630f3141e191d6f452",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_2013_11_1", "brain_mri/Brats18_2013_11_1", {
        "Brats18_2013_11_1_flair.nii.gz": "c26b62ff38b5b351d702dbfcd2265a8a0651729b38c9cfdddcfb057117a47c28",
        "Brats18_2013_11_1_seg.nii.gz": "71407440fe20b4d84559341d8a92b4aa58455951b6614b5538767d2cae48e952",
        "Brats18_2013_11_1_t1.nii.gz": "6d9eb122c6dc83c7b970441e78adc4bcadcca33afdf157163b0d96ed2452c676",
        "Brats18_2013_11_1_t1ce.nii.gz": "a6e6f7762aa1f07e5534528c949e716ffe1690fdef680e4402cf93ef91f6d48b",
        "Brats18_2013_11_1_t2.nii.gz": "64c8320ed9fd2c38d0a65ced45c71cec8cb2cf327658bb96c099d5d64964dd30",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_2013_20_1", "brain_mri/Brats18_2013_20_1", {
        "Brats18_2013_20_1_flair.nii.gz": "5ddf2ffc73c4ae813b9a03c366c6246cfde08293c4d71cd08a6bf525479361a7",
        "Brats18_2013_20_1_seg.nii.gz": "671ac4664f8667c68e4bbde5948c78af56a1c0f74b348631d57e387b8db180e3",
        "Brats18_2013_20_1_t1.nii.gz": "04bcee289ec47d568b59aee7b7b8560e3638ae0833a569e09a1fabf5ebff493b",
        "Brats18_2013_20_1_t1ce.nii.gz": "13d73bad569a559ea66a85f110967080b4ee8cb34a319f70b46213588f8d1b14",
        "Brats18_2013_20_1_t2.nii.gz": "645555989260aef2a6c939a3921121f82203b544ff7ecaace4509018eb3281d7",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_2013_3_1", "brain_mri/Brats18_2013_3_1", {
        "Brats18_2013_3_1_flair.nii.gz": "3174dc0bcac6d1d051e8a97e79df2939cb075cf72306bd9f72139790fddb6000",
        "Brats18_2013_3_1_seg.nii.gz": "5a11f07c8165169744ab168310e02d0c29ea9ee81717adec65719482dc45a98e",
        "Brats18_2013_3_1_t1.nii.gz": "72f7992d0a52f6bdd8281f2e35ba11475050dd90e3a382a3a350acc040367791",
        "Brats18_2013_3_1_t1ce.nii.gz": "60969c8392eef49631c877bbe88db1148c4987ce2e52799ceb8ea4541a566a38",
        "Brats18_2013_3_1_t2.nii.gz": "af870b1abdad2b111689c1ebe2fe3db88527233bbb7a6003085579eaf2e2ff88",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_CBICA_ABM_1", "brain_mri/Brats18_CBICA_ABM_1", {
        "Brats18_CBICA_ABM_1_flair.nii.gz": "f85db3a4614dffc4e03e97d7d18d1ecb7d4522a4a5cf3c9bbca7bd428ce97e4c",
        "Brats18_CBICA_ABM_1_seg.nii.gz": "e44e0c587f473b47af44503a3fff8d455776c55e8c466419bd130759bde05d32",
        "Brats18_CBICA_ABM_1_t1.nii.gz": "771df355c26e002ce5fbcc6d0beeca6ca61d645ae02b718d153a9a3e2c108914",
        "Brats18_CBICA_ABM_1_t1ce.nii.gz": "e738fc627825b7a57ea5869419cd345bc7b4fcaf6dbba50ba392ac17dc34e31f",
        "Brats18_CBICA_ABM_1_t2.nii.gz": "602f1afbed3871fe866b2ff5cdb0f5758ad99c55f1e97c60579aa5aaa03d7c4c",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_CBICA_AQN_1", "brain_mri/Brats18_CBICA_AQN_1", {
        "Brats18_CBICA_AQN_1_flair.nii.gz": "ae201bd142965c976fbd87395906ee240fa895e164190aba6cd69b8d99f9fa84",
        "Brats18_CBICA_AQN_1_seg.nii.gz": "1785109b6bf418ad0076ef1b2ca32f8909c0962276b40a7c80ac034b99e2604f",
        "Brats18_CBICA_AQN_1_t1.nii.gz": "75dff00f0c1c5c978a24753cf740d829a893753f26a76e58b8c18b60ab854dfc",
        "Brats18_CBICA_AQN_1_t1ce.nii.gz": "4bac6b95896a437c2ca1fd8c54749a9daaf7dd4ed8abaeb2d94adf79bf55ec06",
        "Brats18_CBICA_AQN_1_t2.nii.gz": "d3657c673ec261d5929a66e2de3ab8e52063d96affa50fc804dcdbca94570b9d",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_TCIA01_201_1", "brain_mri/Brats18_TCIA01_201_1", {
        "Brats18_TCIA01_201_1_flair.nii.gz": "33b33f39bd39b54067079339ddaafe69ead899f16d1bcb7cd76b0b55360bac74",
        "Brats18_TCIA01_201_1_seg.nii.gz": "4200cc6f1682b47de4837c505d7572d1513f90a12e1214ab6c59420e26f643ce",
        "Brats18_TCIA01_201_1_t1.nii.gz": "69f3c9bfad17b3e2f99535bcc9bb3ee56e484f281d42bff595f379b744e1239c",
        "Brats18_TCIA01_201_1_t1ce.nii.gz": "14854ad3a15f7ecbc28054d444960746b897d35e6594c971c30350dfad75d229",
        "Brats18_TCIA01_201_1_t2.nii.gz": "60c3fc8ee69e75b848c6f2d58d1cc5058ae5e8671913592775351861d9d6aafd",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_TCIA01_378_1", "brain_mri/Brats18_TCIA01_378_1", {
        "Brats18_TCIA01_378_1_flair.nii.gz": "e23cf292d131b2ebee2146122b2f2677c027e955c642fe1c5e87c9d1bc098c8f",
        "Brats18_TCIA01_378_1_seg.nii.gz": "049fc76e999828a0b88e32a0049c0a1a5116af3f04f24adffcee71a2a60fd784",
        "Brats18_TCIA01_378_1_t1.nii.gz": "56c86a058008faa38b85ae6bea488bde75a6360f06deaf9009565591cdd47f10",
        "Brats18_TCIA01_378_1_t1ce.nii.gz": "9567e398865a6e76b856fca83fd7982f3510053215b4f01ec10220f8959dbba4",
        "Brats18_TCIA01_378_1_t2.nii.gz": "216e4efa49ff6981553be4d192b0aa2d5412649f831a9e50cfd8126a6903b6e9",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_TCIA01_425_1", "brain_mri/Brats18_TCIA01_425_1", {
        "Brats18_TCIA01_425_1_flair.nii.gz": "82a573adbff762c864bb1e7d3cdcfa49b9bae3d183221aaae118a1d8e2e219b6",
        "Brats18_TCIA01_425_1_seg.nii.gz": "bb88509dfa8688b6a2a9e16f2bcdfc725a46149771e282f40cb93c40c8af4437",
        "Brats18_TCIA01_425_1_t1.nii.gz": "c9963644a27975103fcab4b63554b9e91c0b581a70d3643ccdf65b65cba5a3fc",
        "Brats18_TCIA01_425_1_t1ce.nii.gz": "218bb879151c292cc87a857e0d3710c15f9fe6ecb6a93a1593eb9e72600b0054",
        "Brats18_TCIA01_425_1_t2.nii.gz": "2b58b3e75907ae30edd926b0f9fb322abba188a9a8508347f69c0548d147515f",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_TCIA02_135_1", "brain_mri/Brats18_TCIA02_135_1", {
        "Brats18_TCIA02_135_1_flair.nii.gz": "1c6dba87158f78c860a83681546dc82620a59a233f2f45cdab94825e766eb463",
        "Brats18_TCIA02_135_1_seg.nii.gz": "f7ef77556d01ccb3bbee30cf99204dc100ad6db64f0c903d97868f70237205f5",
        "Brats18_TCIA02_135_1_t1.nii.gz": "6f3162653ca2623e3b1fcf4fcfc158a0e60804f0d6b456eec8f1f1ecf7b0f9ce",
        "Brats18_TCIA02_135_1_t1ce.nii.gz": "9163192d051b7d380c8f59b83ec81a7526b52227cddccd06a4c43312577d0237",
        "Brats18_TCIA02_135_1_t2.nii.gz": "c9a72cfc731a3304f884e0fba38be9618b32d42eaff39c14f043ef79bef3377c",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_TCIA02_370_1", "brain_mri/Brats18_TCIA02_370_1", {
        "Brats18_TCIA02_370_1_flair.nii.gz": "9072caea1e82740154cebf88a671eb8abc8ada725ea6e5b5e53e3e5dd93d1cdc",
        "Brats18_TCIA02_370_1_seg.nii.gz": "50fd2f1da0c14c8c20cd695c87b405c2617ba2c79d4f6e2ebeb62d129461eeb9",
        "Brats18_TCIA02_370_1_t1.nii.gz": "6c795f07f6af304babc1f0db2f3f1658f4bb00ffbb2d14feed4e6ace341f53c3",
        "Brats18_TCIA02_370_1_t1ce.nii.gz": "ddbab17bf00f7b6db17f0a3a431d4d434569b6d1f008d5e83b421a4187327992",
        "Brats18_TCIA02_370_1_t2.nii.gz": "97189d0bf23da88af729e84cb5387b95af6acef76252ae529b8718421169acb3",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_TCIA02_606_1", "brain_mri/Brats18_TCIA02_606_1", {
        "Brats18_TCIA02_606_1_flair.nii.gz": "c2de1a7d9f22b66c8211ab59e7b6a4df4258cd804a1896a89cf168e3021766c7",
        "Brats18_TCIA02_606_1_seg.nii.gz": "193198000ae6e8ca20fcdde9b3c373b4e17b5ec5142271b051db9632cd6f251f",
        "Brats18_TCIA02_606_1_t1.nii.gz": "2cb95e95f3b523c8a92a4d6d2f5898eb1a274df39fb6d67bbf95ae7fdb0a154e",
        "Brats18_TCIA02_606_1_t1ce.nii.gz": "5e8da200524c7e5ebebec47086ce8889aa48fb18d6e536bde56b72a222518435",
        "Brats18_TCIA02_606_1_t2.nii.gz": "f5c353ca7e719c264f48f6449dfa6a6c2c596b491729ab89f3a5d2cb9d3b3f60",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_TCIA03_265_1", "brain_mri/Brats18_TCIA03_265_1", {
        "Brats18_TCIA03_265_1_flair.nii.gz": "e09ce2c879481130ee955f6071ae536f233bc49d7a00f7f6a38e173c115c8c9e",
        "Brats18_TCIA03_265_1_seg.nii.gz": "6df38783b83b5870c68e963107faa30b7fd0b2da05bbe8b6172c47b87b255ddf",
        "Brats18_TCIA03_265_1_t1.nii.gz": "556eea534c77d3e24b9362acc0cceb65fb233765daf33a3c7b83c6ae044f4788",
        "Brats18_TCIA03_265_1_t1ce.nii.gz": "fa452fe63c5c778d0e0b92e1d28cd6739cd40ddd381d14799a8640bfa9bed960",
        "Brats18_TCIA03_265_1_t2.nii.gz": "0b6e5bbdc3b05ddf172a0cd6ea6c1d99f12d2406cca5e358a20ea8a5cef2778b",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_TCIA10_628_1", "brain_mri/Brats18_TCIA10_628_1", {
        "Brats18_TCIA10_628_1_flair.nii.gz": "38b213419af8bc71f6de2278f66298009e1c75eace6197b068b238264a2914c9",
        "Brats18_TCIA10_628_1_seg.nii.gz": "cbefe79827c57a98e8d1b9876be14832314ca2dfaf3856bcaac3c71e766d6e52",
        "Brats18_TCIA10_628_1_t1.nii.gz": "dac618dee29d7c95c993c6c4c6b14cf784d79f72b85094baffdadbfa4383ae19",
        "Brats18_TCIA10_628_1_t1ce.nii.gz": "972d7dfe964b4f3d7d8de2e75f701c141979179d6e64462d434031ca19c9b6da",
        "Brats18_TCIA10_628_1_t2.nii.gz": "44b732f2377ebebe1721f45ca8aa3789fcdfd73f5c20f1a6953dc02041651ef7",
    }),
    *_folder("brain_mri_more", _BRATS18, "sample_volume/brats/Brats18_TCIA13_623_1", "brain_mri/Brats18_TCIA13_623_1", {
        "Brats18_TCIA13_623_1_flair.nii.gz": "d31dfd6fd80e105d0c23a87f419b1a7a4af4fa851aae264e8f84f0b37693cb81",
        "Brats18_TCIA13_623_1_seg.nii.gz": "8885bebcbbe9ca7a7537b404cf1a0259238e513b389e7c7defc68727ee47b838",
        "Brats18_TCIA13_623_1_t1.nii.gz": "00ae6830c69fff6616e9f3e463fe0d3ff56ec9dc20b49def0c4c2bd63a5fa3bf",
        "Brats18_TCIA13_623_1_t1ce.nii.gz": "29717dfa11781c2aee83ed94874a5c0b81c47df48340e6e1284d0833532dcb24",
        "Brats18_TCIA13_623_1_t2.nii.gz": "87e7e7373a72a187c8a0dc4a785de4cf742eb33c2a53b931ac1c761ef1d5569b",
    }),
    *_folder("brain_mri_more", _OPENMS, "cross_sectional/MNI/patient07", "brain_mri/OpenMS-patient07", {
        "FLAIR_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "2f884f00d4e9cbca061a5fd2f988547df312d86194b331f4ca511cf852f775db",
        "GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI.nii.gz": "811e8c906d572e8675c67c98176d0e883ec87655ebea89f31da407a18fb1aae7",
        "T1POST_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "6f12c9ee925a419eab4f7e90d795ab09e91b21b3fec87b40cbde229a1139b28f",
        "T1_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "0d9e0c933140e64ba42931f5ed7aece2a7cc7001fe6c8d753720c487f5e1b8b1",
        "T2_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "272765a0f017d34d51de97690dd33495ce0191d04671be648bf2bc117bd4c4d7",
    }),
    *_folder("brain_mri_more", _OPENMS, "cross_sectional/MNI/patient19", "brain_mri/OpenMS-patient19", {
        "FLAIR_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "6e4191c583abdb818f2de9fd47a876c2a71451f1c1672e443874af1fe78b02ad",
        "GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI.nii.gz": "1cf465372d5e647fb5a2f1ac062fe314e7aa7f0873c68108617530541f2362c4",
        "T1POST_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "e298c00ec0639258662689242eb380619f8af5129812ea57b3715e525a981b67",
        "T1_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "24ea608f6817c9799888491988f9ec9464f0f2faa02f512e8c2e07466f705781",
        "T2_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "585d38f7c3714594be60d5ebb13b4b20a9294d6804ce2d6e0e8f170f530a87e2",
    }),
    *_folder("brain_mri_quick", _OPENMS, "cross_sectional/MNI/patient26", "brain_mri/OpenMS-patient26", {
        "FLAIR_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "254ab239bdc83119015213af9c533f9af13dbed2b06b9a89fde43226cc4afa2a",
        "GOLD_STANDARD_N4_noneck_reduced_winsor_regtoFLAIR_regtoMNI.nii.gz": "5a9cc6ffbe3a5d2df67fba4207c0585b2f02a5f9f7f31e0e7e3f57cc59c2c5ac",
        "T1POST_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "710cdfee41453cad0e1bf5b5f599e5135225eae3e6cb5e6d8f9edb1d240a763c",
        "T1_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "e813b2805017dcf886da9bb5e6c6c548dfa938c17d49ecd66ea1caabe3794b32",
        "T2_N4_noneck_reduced_winsor_regtoFLAIR_brain_N4_regtoMNI.nii.gz": "b84155ea55bfa1d8e1714161d302c393efae67b3bc580c99c4d09d5e49994e7f",
    }),
    *_folder("brain_mri_raw", _OPENMS, "longitudinal/raw/patient03", "brain_mri_raw/OpenMS-long-patient03-study2", {
        "gt.nii.gz": "0153288190aeddce5aee1a4daeb1ed00b5bdc821029367a6d97374f0e6efb761",
        "study2_FLAIR.nii.gz": "e0ec8ec77763a5fb7177325bb6c6372cb6e744242b9700bc9fc0ba00a27aeff0",
        "study2_FLAIR_to_common_space.txt": "7585bdfd18027559a9842948ca51909a8d7056a8a07ed33878fca96f4fea3e4f",
        "study2_T1W.nii.gz": "a514a804939724ceb1e232b8ef179d4c2f39d9b7b481deed1b7f6368b3d87029",
        "study2_T1W_intrastudy_to_FLAIR.txt": "45753903c12811fd962cc350ac0757ad9bc73e9a1de1441787c2c5dbf610701a",
        "study2_T2W.nii.gz": "c037a753bf4bef5cfe9ddedc10f855b58ceb06a9888550cc5cb18cede8f820d5",
        "study2_T2W_intrastudy_to_FLAIR.txt": "bc4d85100db2c5cddb64c411d82e4e2d188e74ecf6769b2ed636673a2edba5db",
    }),
    *_folder("brain_mri_raw", _OPENMS, "longitudinal/raw/patient04", "brain_mri_raw/OpenMS-long-patient04-study1", {
        "gt.nii.gz": "ce9de54f06fc814f6c38c75b29f1bd35f214dae9eb7c40fd04b25da403507361",
        "study1_FLAIR.nii.gz": "78a3a0136b5c0e0ecda98bdc105d49ef08b17ec607400a72989313b8e501b53d",
        "study1_FLAIR_to_common_space.txt": "6ae89e6289c1ad3b1d3c7a79bb5119d2fd7035e077980e18cf08b50a97198695",
        "study1_T1W.nii.gz": "d14d6dd3ecebe0b362afcbe88291360c0f9bad0847aace908acb11e87de1a597",
        "study1_T1W_intrastudy_to_FLAIR.txt": "d2f5a24e368641fbc32fe5f9ca802b3de2703cf6aea088fa5371cd9d427b0042",
        "study1_T2W.nii.gz": "de5f799bccb145fddb9cef72f6676c95c4cf1178bcc16916ab8bd1381aa65532",
        "study1_T2W_intrastudy_to_FLAIR.txt": "2e90d6d55756968cdb1b4c4f81466d16465ef3dbe3eb3c9296a0146716ce60cc",
    }),
]




def _extended_folder(origin: str) -> str:
    """Where an extended file goes under the data root: beside the 23 subjects, in one folder per person."""
    parts = origin.split("/")
    if origin.startswith("cross_sectional/MNI/patient"):
        return f"brain_mri/OpenMS-{parts[-2]}/{parts[-1]}"
    return f"brain_mri/{parts[-2]}/{parts[-1]}"  # sample_volume/brats/<id>/<file>, Data/Example/<id>/<file>


def extended_manifest() -> list[Entry]:
    """The 34 further people of ``--extended`` (not in the shared copy): BraTS 2014/2018 cases checked by SHA-256,
    OpenMS patients checked by git blob id. Files of the main manifest are left out."""
    known = {e.origin for e in MANIFEST if e.repo == _OPENMS[0]}
    entries = []
    with open(LISTS / "more_brain_subjects.tsv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            entries.append(Entry(_extended_folder(row["path"]), "brain_mri_extended", row["repository"], row["commit"],
                                 row["path"], row["sha256"]))
    with open(LISTS / "open_ms_data_cross_sectional_MNI.tsv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if row["path"] not in known:
                entries.append(Entry(_extended_folder(row["path"]), "brain_mri_extended", *_OPENMS, row["path"], None,
                                     git_blob_sha1=row["git_blob_sha1"]))
    return entries


# the ct_extended set's DICOM series: (folder under ct_extended/, phase, body region, what it is)
CT_EXTENDED_SERIES = {
    "ircadb17_portal_venous": ("contrast", "abdomen", "3D-IRCADb-01 patient 17, portal-venous abdomen (512x512x119, "
                               "0.74x0.74x1.6 mm); CC BY-NC-ND 3.0: research, no redistribution of derivatives"),
    "ircadb01_portal_venous": ("contrast", "abdomen", "3D-IRCADb-01 patient 1, portal-venous abdomen (512x512x129, "
                               "0.57x0.57x1.6 mm); CC BY-NC-ND 3.0: research, no redistribution of derivatives"),
    "lidc_idri_0314_non_contrast": ("non_contrast", "chest_abdomen", "LIDC-IDRI-0314, non-contrast chest to upper "
                                    "abdomen (512x512x275, 0.78x0.78x1 mm); TCIA, CC BY 3.0"),
    "4dct_phase00_non_contrast": ("non_contrast", "chest", "one phase of a non-contrast 4D-CT of the chest "
                                  "(512x512x141, 0.98x0.98x2 mm), ITKElastix's example data (Apache-2.0)"),
}


# organ masks of a contrast scan of the ct_extended set (DICOM series of 0/255 slices on the scan's grid): the real
# portal-venous HU per region that the CT evaluation prints beside a translation. {scan: {region: folder}}, under
# ct_extended/; IRCADb's "artery" mask is the aorta with its abdominal branches
CT_EXTENDED_LABELS = {
    "ircadb17_portal_venous": {"aorta": "ircadb17_masks/artery", "portal vein": "ircadb17_masks/portalvein",
                               "liver": "ircadb17_masks/liver", "bone": "ircadb17_masks/bone"},
}


def ct_extended_manifest() -> list[Entry]:
    """The ``ct_extended`` set (``tools/sample_lists/ct_extended.tsv``): each slice file of the DICOM series of
    ``CT_EXTENDED_SERIES`` and of the masks of ``CT_EXTENDED_LABELS``, from its public repository at a pinned commit,
    checked by SHA-256."""
    with open(LISTS / "ct_extended.tsv", encoding="utf-8", newline="") as f:
        return [Entry(row["dest"], "ct_extended", row["repository"], row["commit"], row["path"], row["sha256"])
                for row in csv.DictReader(f, delimiter="\t")]
