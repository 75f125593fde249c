"""Outcome-task code groups and instruction-task (Savage et al.) vocabularies."""

from __future__ import annotations

# Hand-packed tables: the formatter would put every string on its own line.
# fmt: off

# --- outcome tasks: curated ICD-9 groups first (most frequent first), each with a few terms the
# admission note mentions when the code is present. "severe" codes become likelier with severity.
DIAG_CODES: list[tuple[str, list[str], bool]] = [
    ("401", ["hypertension", "on lisinopril", "elevated blood pressure"], False),
    ("428", ["congestive heart failure", "reduced ejection fraction", "on furosemide"], False),
    ("427", ["atrial fibrillation", "irregularly irregular rhythm", "on warfarin"], False),
    ("276", ["hyponatremia", "hypokalemia", "volume depleted"], False),
    ("414", ["coronary artery disease", "prior stent", "CABG"], False),
    ("272", ["hyperlipidemia", "on atorvastatin", "high cholesterol"], False),
    ("250", ["diabetes mellitus", "on insulin", "metformin"], False),
    ("584", ["acute kidney injury", "creatinine elevated", "oliguria"], True),
    ("518", ["respiratory failure", "hypoxemia", "increased work of breathing"], True),
    ("285", ["anemia", "hematocrit low", "pale conjunctivae"], False),
    ("599", ["urinary tract infection", "dysuria", "positive urinalysis"], False),
    ("530", ["GERD", "reflux", "on omeprazole"], False),
    ("038", ["bacteremia", "blood cultures positive", "rigors"], True),
    ("V45", ["pacemaker", "implanted device", "status post"], False),
    ("995", ["sepsis", "fever and tachycardia", "leukocytosis"], True),
    ("403", ["chronic kidney disease", "hypertensive nephropathy", "stage 4 CKD"], False),
    ("496", ["COPD", "emphysema", "home oxygen"], False),
    ("244", ["hypothyroidism", "levothyroxine", "elevated TSH"], False),
    ("V58", ["long term anticoagulation", "chronic prednisone", "coumadin clinic"], False),
    ("305", ["tobacco use", "smokes one pack per day", "cannabis"], False),
    ("486", ["pneumonia", "infiltrate", "productive cough"], False),
    ("311", ["depression", "sertraline", "depressed mood"], False),
    ("785", ["septic shock", "requiring pressors", "norepinephrine"], True),
    ("287", ["thrombocytopenia", "low platelets", "petechiae"], True),
    ("493", ["asthma", "albuterol inhaler", "wheezing"], False),
    ("585", ["end stage renal disease", "hemodialysis", "AV fistula"], False),
    ("V15", ["fall risk", "history of falls", "noncompliance"], False),
    ("303", ["alcohol abuse", "drinks a pint of vodka daily", "alcohol withdrawal"], False),
    ("507", ["aspiration", "witnessed aspiration event", "gurgling respirations"], True),
    ("434", ["stroke", "hemiparesis", "facial droop"], True),
    ("410", ["myocardial infarction", "troponin elevated", "ST elevation"], True),
    ("348", ["encephalopathy", "altered mental status", "somnolent"], True),
    ("571", ["cirrhosis", "ascites", "varices"], False),
    ("578", ["gastrointestinal bleeding", "melena", "hematochezia"], False),
    ("424", ["aortic stenosis", "mitral regurgitation", "systolic murmur"], False),
    ("707", ["pressure ulcer", "sacral decubitus", "wound care"], False),
    ("458", ["hypotension", "orthostatic", "lightheaded"], False),
    ("682", ["cellulitis", "erythema", "abscess"], False),
    ("300", ["anxiety", "panic attacks", "lorazepam"], False),
    ("431", ["intracerebral hemorrhage", "intraparenchymal bleed", "midline shift"], True),
    ("560", ["small bowel obstruction", "distended abdomen", "obstipation"], False),
    ("577", ["pancreatitis", "lipase elevated", "epigastric pain"], False),
    ("415", ["pulmonary embolism", "filling defect", "pleuritic pain"], False),
    ("574", ["cholecystitis", "gallstones", "Murphy sign"], False),
    ("345", ["seizure", "epilepsy", "levetiracetam"], False),
    ("733", ["osteoporosis", "compression fracture", "alendronate"], False),
    ("V43", ["hip replacement", "knee arthroplasty", "prosthetic joint"], False),
    ("820", ["hip fracture", "femoral neck fracture", "shortened and externally rotated"], False),
    ("162", ["lung cancer", "lung mass", "adenocarcinoma"], False),
    ("197", ["metastatic disease", "liver metastases", "bony metastases"], True),
    ("426", ["heart block", "bundle branch block", "bradycardia"], False),
    ("441", ["aortic aneurysm", "AAA", "aortic dissection"], False),
    ("288", ["neutropenia", "leukopenia", "low white count"], False),
    ("332", ["Parkinson disease", "resting tremor", "carbidopa levodopa"], False),
    ("290", ["dementia", "memory loss", "nursing home resident"], False),
    ("E849", ["accident at home", "tripped on a rug", "mechanical fall"], False),
    ("E878", ["surgical complication", "reaction to procedure", "postoperative course"], False),
]
# Procedure groups as the task scripts write them: leading zeros lost ("033" -> "33").
PROC_CODES: list[tuple[str, list[str], bool]] = [
    ("967", ["mechanical ventilation", "ventilator", "ARDSnet settings"], True),
    ("389", ["central line", "venous catheter", "PICC"], True),
    ("966", ["tube feeds", "enteral nutrition", "dobhoff"], True),
    ("960", ["endotracheal tube", "airway protection", "emergent intubation"], True),
    ("990", ["transfusion", "packed red cells", "pRBC"], False),
    ("396", ["cardiopulmonary bypass", "on pump", "perfusion"], False),
    ("361", ["bypass grafting planned", "surgical revascularization", "graft"], False),
    ("372", ["cardiac catheterization", "cath lab", "left heart cath"], False),
    ("885", ["coronary angiography", "angiogram", "contrast load"], False),
    ("395", ["dialysis session", "CRRT", "ultrafiltration"], True),
    ("311", ["tracheostomy", "trach", "prolonged airway"], True),
    ("38", ["epidural injection", "spinal injection", "intrathecal"], False),
    ("431", ["PEG tube", "gastrostomy", "feeding tube placement"], False),
    ("451", ["EGD", "upper endoscopy", "duodenal biopsy"], False),
    ("549", ["paracentesis", "peritoneal tap", "ascitic fluid"], False),
    ("39", ["spinal cord decompression", "laminectomy", "cord compression"], False),
    ("332", ["bronchoscopy", "BAL", "airway inspection"], False),
    ("33", ["lumbar puncture", "CSF analysis", "opening pressure"], False),
    ("815", ["hip arthroplasty", "total knee", "joint replacement surgery"], False),
    ("790", ["open reduction", "fracture fixation", "ORIF"], False),
    ("545", ["lysis of adhesions", "adhesiolysis", "exploratory laparotomy"], False),
    ("457", ["bowel resection", "colectomy", "hemicolectomy"], False),
    ("511", ["ERCP", "biliary stent", "sphincterotomy"], False),
    ("512", ["cholecystectomy", "laparoscopic gallbladder removal", "lap chole"], False),
    ("13", ["craniotomy", "evacuation of hematoma", "burr hole"], True),
    ("349", ["thoracentesis", "pleural fluid", "pleural tap"], False),
    ("340", ["chest tube", "thoracostomy", "pleural drain"], False),
    ("378", ["pacemaker insertion", "pacer", "permanent pacemaker"], False),
    ("376", ["balloon pump", "IABP", "intra-aortic"], True),
    ("996", ["cardioversion", "DC cardioversion", "synchronized shock"], False),
    ("887", ["echocardiogram", "TTE", "diagnostic ultrasound"], False),
]
# Words for the long tail of the code space (up to the real 1266 / 711 codes).
TAIL_ADJ = [
    "chronic", "nodular", "cystic", "benign", "atrophic", "calcified", "congenital", "focal",
    "recurrent", "hypertrophic", "inflammatory", "fibrotic", "ectatic", "stenotic", "polypoid",
    "hemorrhagic", "degenerative", "atypical", "granulomatous", "sclerotic",
]
TAIL_LESION = [
    "lesion", "cyst", "mass", "nodule", "stricture", "ulceration", "thickening", "deformity",
    "effusion", "dilation", "fistula", "abscess", "polyp", "hyperplasia", "neuropathy",
]
TAIL_SITE = [
    "left kidney", "right kidney", "sigmoid colon", "cecum", "thyroid", "parotid gland",
    "left ureter", "bladder neck", "lumbar spine", "cervical spine", "left shoulder", "right knee",
    "pituitary", "adrenal gland", "esophagus", "duodenum", "spleen", "retina", "middle ear",
    "left breast", "prostate", "ovary", "uterus", "tongue", "larynx", "trachea", "pleura",
    "pericardium", "mitral valve", "tricuspid valve", "femur", "tibia", "scalp", "sacrum",
    "left hand", "right foot", "optic nerve", "cerebellum", "temporal lobe", "skin of the back",
]
TAIL_PROC = [
    "biopsy", "excision", "repair", "drainage", "resection", "fixation", "dilation", "ablation",
    "incision", "revision", "reconstruction", "aspiration", "injection", "stent placement",
    "debridement", "closure", "irrigation", "exploration", "transplant", "amputation",
]

# --- instruction tasks (Savage et al.)
UTI_SYMPTOMS = [
    "dysuria", "urinary frequency", "urinary urgency", "suprapubic pain", "cloudy urine",
    "burning with urination", "new urinary incontinence",
]
UTI_TESTS = [
    "urinalysis positive for leukocyte esterase and nitrites",
    "pyuria with 50 WBC per high power field",
    "urine culture growing more than 100,000 CFU of E. coli",
    "started on nitrofurantoin for cystitis",
]
UTI_NEGATED = [
    "denies dysuria", "urinalysis negative", "no urinary symptoms", "urine culture with no growth",
]
NA_CHOICES = ["SIADH", "Hypovolemia", "Primary polydipsia"]
TRIAGE_PROVIDERS = ["Nurse", "Physician", "Pharmacist", "Scheduling"]
# (provider, urgency) -> message templates; {drug} and {day} are filled in.
TRIAGE_MESSAGES: dict[tuple[str, str], list[str]] = {
    ("Pharmacist", "Routine"): [
        "I need a refill of my {drug}, I have about a week left.",
        "Can I take my {drug} with food or should it be on an empty stomach?",
        "Is it okay to take ibuprofen while I am on {drug}?",
    ],
    ("Pharmacist", "Urgent"): [
        "I accidentally took a double dose of my {drug} this morning and feel dizzy.",
        "Since starting {drug} my lips and tongue are swelling.",
        "I ran out of {drug} three days ago and my heart is racing.",
    ],
    ("Scheduling", "Routine"): [
        "I need to reschedule my appointment on {day} because of work.",
        "Can I get a follow up visit booked for next month?",
        "Please cancel my visit on {day}, I will call back to rebook.",
    ],
    ("Scheduling", "Urgent"): [
        "The clinic cancelled my {day} visit and I need to be seen before my surgery this week.",
        "I was told to get an appointment within 48 hours after my hospital discharge.",
    ],
    ("Nurse", "Routine"): [
        "How should I clean the incision from my surgery?",
        "My blood pressure readings this week were 132/80 and 128/78, is that okay?",
        "Do I need to fast before my blood test on {day}?",
    ],
    ("Nurse", "Urgent"): [
        "My incision is red, warm and draining pus and I have a fever of 102.",
        "My blood sugar reading is 45 and I feel shaky and sweaty.",
        "I have been vomiting all day and cannot keep any fluids down.",
    ],
    ("Physician", "Routine"): [
        "Can you explain what my cholesterol results from {day} mean?",
        "I have had a mild rash on my elbows for a month, should I see dermatology?",
        "Should we change my {drug} dose since my readings are better?",
    ],
    ("Physician", "Urgent"): [
        "I have crushing chest pain and shortness of breath since this morning.",
        "I fainted at home today and hit my head.",
        "I am coughing up blood and feel short of breath.",
    ],
}
TRIAGE_DRUGS = [
    "metformin", "lisinopril", "warfarin", "atorvastatin", "levothyroxine", "sertraline",
]
TRIAGE_OPENERS = [
    "Hello,", "Hi doctor,", "Sorry to bother you.", "I hope you are well.",
    "My husband asked me to write.", "Good morning.",
]
TRIAGE_CLOSERS = ["Thank you.", "Thanks for your help.", "Please let me know.", "Best wishes."]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

# fmt: on
